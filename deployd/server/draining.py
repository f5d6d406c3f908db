"""Shutting down without dropping requests: readiness turns 503 first, serving goes on for a while.

gunicorn stops on SIGTERM by closing its listening sockets and telling the workers to finish their
current request; whatever waits in the listen queue, and whatever a load balancer still sends
before it has seen the pod go, is refused. `install()` (gunicorn.conf.py's `when_ready` hook)
changes what the master does with the first SIGTERM: it marks the server as draining, so every
worker's `/readyz` answers 503 `shutting_down` while polls are still served, and only after
`seconds` sends itself the SIGTERM that starts gunicorn's graceful stop. A second SIGTERM during
the drain stops at once (still gracefully).

The mark lives in shared memory made when this module is imported in the master (gunicorn's, or
granian's: deployd/server/granian.py), before it forks the workers, so every worker sees the
master set it.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

# When draining began (time.time()), 0.0 while serving normally; shared with forked workers.
_draining_since = multiprocessing.RawValue(ctypes.c_double, 0.0)


def draining() -> bool:
    """Whether the server is shutting down (readiness fails; requests are still served)."""
    return _draining_since.value > 0


def begin() -> None:
    """Mark the server as draining, for this process and every worker forked from it."""
    _draining_since.value = time.time()


def install(arbiter: Any, seconds: float) -> None:
    """Make gunicorn's master drain for `seconds` on SIGTERM before its graceful stop."""
    arbiter.handle_term = drain_first(arbiter.handle_term, seconds, arbiter.log.info)


def drain_first(
    stop: Callable[[], None], seconds: float, announce: Callable[[str], None]
) -> Callable[[], None]:
    """A SIGTERM handler for a server's master whose own handler is `stop`.

    The first SIGTERM marks the server as draining, says so with `announce` and, `seconds`
    later, sends this process SIGTERM again; that one, or any SIGTERM during the drain, calls
    `stop`. With `seconds` 0 every SIGTERM calls `stop` at once. Used by gunicorn (`install`)
    and by granian (deployd/server/granian.py)."""

    def handle_term() -> None:
        if seconds <= 0 or draining():
            stop()
            return
        begin()
        announce(
            f"SIGTERM: readiness answers 503 shutting_down; serving {seconds:g} s more"
            " before stopping"
        )
        timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGTERM))
        timer.daemon = True
        timer.start()

    return handle_term
