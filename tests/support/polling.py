"""Driving a client Poller in tests: a recording reconciler, a run in a thread, waiting on a
condition with a deadline."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from deployd.client.errors import ReconcileError
from deployd.client.hierarchy import DesiredState
from deployd.client.poller import Poller
from deployd.client.reconcilers import Reconciler

LICENSE = "eyJhbGciOiJFZERTQSJ9.eyJjaGFubmVsIjoic3RhYmxlIn0.c2lnbmF0dXJl"  # channel: stable


class Recorder:
    """A reconciler that records its calls and fails the first `failures` of them."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[tuple[DesiredState, DesiredState | None]] = []
        self.failures = failures

    def reconcile(self, desired: DesiredState, previous: DesiredState | None) -> None:
        self.calls.append((desired, previous))
        if len(self.calls) <= self.failures:
            raise ReconcileError(f"attempt {len(self.calls)} failed")


@contextlib.contextmanager
def running(poller: Poller, reconciler: Reconciler) -> Iterator[None]:
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


def eventually(condition: Callable[[], object], timeout: float = 60.0) -> None:
    """Wait until `condition()` holds, failing after a generous `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def run_until(
    poller: Poller, reconciler: Reconciler, done: Callable[[], object], timeout: float = 60.0
) -> None:
    with running(poller, reconciler):
        eventually(done, timeout)
