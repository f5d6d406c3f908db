"""The background thread that keeps one worker's view of the store fresh, off the request path.

Requests only read what the worker holds (`deployd.server.view.ServerState`, the rate limiters'
budgets); this thread does the store round trips: it refreshes the view (publishes, revocations),
reloads the compiled channels a publish changed, and syncs the rate-limit counts. A hung or
partitioned Redis then delays this thread, never a poll. After a failed round it backs off
(doubling, capped at `max_backoff`) and tries again; `ServerState.store_error` says the store is
unreachable meanwhile.

One thread per process: `ensure_running()` starts it on first use and again in a forked child
(gunicorn workers fork from a master that may have built the app), since threads do not survive a
fork. It is a daemon and `stop()` ends it between rounds (`stop_all()`: every refresher of the
process, from gunicorn's `worker_exit` hook). It holds its tasks weakly: once the app that owns
them is gone (tests build many), the thread ends by itself.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Sequence

logger = logging.getLogger(__name__)

# A round's outcome: True when every store round trip of it succeeded.
Task = Callable[[], bool]


class Refresher:
    def __init__(self, tasks: Sequence[Task], *, interval: float, max_backoff: float = 2.0):
        self._tasks = [_weakly(task) for task in tasks]
        self.interval = interval
        self.max_backoff = max(max_backoff, interval)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive() and self._pid == os.getpid()

    def ensure_running(self) -> None:
        """Start the thread in this process unless it runs already (cheap: called per request)."""
        if self.running or self._stop.is_set():
            return
        with self._lock:
            if self.running or self._stop.is_set():
                return
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="deployd-refresher", daemon=True)
            self._thread.start()
            _refreshers.add(self)

    def wake(self) -> None:
        """Run the next round now rather than after the interval (not while backing off)."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after its current round; wait up to `timeout` for it."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and self._pid == os.getpid() and thread.is_alive():
            thread.join(timeout)

    def run_once(self) -> bool:
        """One round of every task; True when all of them reached the store."""
        ok = True
        for reference in self._tasks:
            task = reference()
            if task is None:  # its owner is gone: nothing left to refresh
                self._stop.set()
                return True
            try:
                ok = task() and ok
            except Exception:
                logger.exception("background refresh failed")
                ok = False
        return ok

    def _run(self) -> None:
        delay = self.interval
        while not self._stop.is_set():
            self._wake.clear()
            if self.run_once():
                delay = self.interval
                self._wake.wait(delay)
            else:
                # Back off: the wait doubles after each failure, capped; a wake does not cut it.
                delay = min(self.max_backoff, delay * 2)
                self._stop.wait(delay)


_refreshers: weakref.WeakSet[Refresher] = weakref.WeakSet()


def stop_all(timeout: float = 5.0) -> None:
    """Stop every refresher started in this process."""
    for refresher in list(_refreshers):
        refresher.stop(timeout)


def _weakly(task: Task) -> Callable[[], Task | None]:
    """A weak reference to a bound method (so the refresher does not keep its owner alive)."""
    if hasattr(task, "__self__"):
        return weakref.WeakMethod(task)
    return lambda: task
