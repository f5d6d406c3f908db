"""Driving a client Poller in tests: a recording reconciler, a run in a thread, waiting on a
condition with a deadline."""

from __future__ import annotations

import contextlib
import threading
import time

from deployd.client.errors import ReconcileError

LICENSE = "eyJhbGciOiJFZERTQSJ9.eyJjaGFubmVsIjoic3RhYmxlIn0.c2lnbmF0dXJl"  # channel: stable


class Recorder:
    """A reconciler that records its calls and fails the first `failures` of them."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[tuple] = []
        self.failures = failures

    def reconcile(self, desired, previous):
        self.calls.append((desired, previous))
        if len(self.calls) <= self.failures:
            raise ReconcileError(f"attempt {len(self.calls)} failed")


@contextlib.contextmanager
def running(poller, reconciler):
    """Run `poller.run` in a thread for the duration of the block (one run: one start)."""
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(reconciler, stop))
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def eventually(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def run_until(poller, reconciler, done, timeout=5.0):
    with running(poller, reconciler):
        eventually(done, timeout)
