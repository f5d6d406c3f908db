"""Shutting down without dropping requests: readiness turns 503 first, serving goes on for a while.

gunicorn stops on SIGTERM by closing its listening sockets and telling the workers to finish their
current request; whatever waits in the listen queue, and whatever a load balancer still sends
before it has seen the pod go, is refused. `install()` (gunicorn.conf.py's `when_ready` hook)
changes what the master does with the first SIGTERM: it marks the server as draining, so every
worker's `/readyz` answers 503 `shutting_down` while polls are still served, and only after
`seconds` sends itself the SIGTERM that starts gunicorn's graceful stop. A second SIGTERM during
the drain stops at once (still gracefully).

The mark lives in shared memory made when this module is imported in the gunicorn master, before
it forks the workers, so every worker sees the master set it.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import threading
import time
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
    stop = arbiter.handle_term

    def handle_term() -> None:
        if seconds <= 0 or draining():
            stop()  # gunicorn's own: raises StopIteration, which starts the graceful stop
            return
        begin()
        arbiter.log.info(
            "SIGTERM: readiness answers 503 shutting_down; serving %g s more before stopping",
            seconds,
        )
        timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGTERM))
        timer.daemon = True
        timer.start()

    arbiter.handle_term = handle_term
