"""What the poll path counts, kept in this process's memory and added to the Prometheus values in
batches.

In prometheus-client's multiprocess mode every `inc()` or `observe()` writes a value kept in a
memory-mapped file, under a lock, after checking the process id: on the bench machine about
2.4 µs an increment and 3.5 µs an observation, four of them per poll, about 14 µs added to a 304
answered from memory in 16 µs. The poll path instead adds to plain dictionaries under one lock of
this process (no file, no system call), and `flush()` moves what was added to the Prometheus
values (docs/performance.md, *What counting metrics costs*, has what counting costs now):

- each worker's background round does (deployd.metrics.rounds, every DEPLOYD_REFRESH_INTERVAL);
- a scrape does for its own process before it reads the values (deployd.metrics.multiproc);
- a worker's orderly exit does (gunicorn's `worker_exit` hook, and Python's exit handlers).

So a scrape sees another worker's counts at most one refresh interval late, and a worker killed
outright (SIGKILL) loses at most that interval's counts; nothing else changes. A forked child
starts with nothing pending (its parent's counts are the parent's to flush).

The only prometheus-client internals used are a histogram child's `_upper_bounds`, `_buckets`
and `_sum`, the values `observe()` itself updates (tests/metrics/test_tally.py checks that a flush
exposes exactly what the same observations made one by one do).
"""

from __future__ import annotations

import atexit
import bisect
import os
import threading
from typing import Any


class _Observations:
    """Observations of one histogram child not flushed yet: how many per bucket, and their sum."""

    __slots__ = ("counts", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.total = 0.0


class Tally:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[Any, float] = {}
        self._observations: dict[Any, _Observations] = {}
        self._bounds: dict[Any, list[float]] = {}

    def inc(self, counter: Any, amount: float = 1.0) -> None:
        """Add `amount` to a counter child (a bound `Counter.labels(...)`) at the next flush."""
        with self._lock:
            counts = self._counts
            counts[counter] = counts.get(counter, 0) + amount

    def observe(self, histogram: Any, value: float) -> None:
        """Observe `value` in a histogram child at the next flush."""
        self.add(None, histogram, value)

    def add(self, counter: Any | None, histogram: Any, value: float) -> None:
        """`inc(counter)` (unless None) and `observe(histogram, value)` at once: one request, its
        count and its duration. (On the poll path: written out, not split into calls.)"""
        bounds = self._bounds.get(histogram)
        if bounds is None:
            bounds = self._bounds[histogram] = list(histogram._upper_bounds)
        # observe() puts a value in the first bucket whose bound is >= it; so does bisect_left.
        index = bisect.bisect_left(bounds, value)
        with self._lock:
            if counter is not None:
                counts = self._counts
                counts[counter] = counts.get(counter, 0) + 1
            pending = self._observations.get(histogram)
            if pending is None:
                pending = self._observations[histogram] = _Observations(len(bounds))
            pending.counts[index] += 1
            pending.total += value

    def flush(self) -> None:
        """Add everything counted since the last flush to the Prometheus values."""
        with self._lock:
            counts, self._counts = self._counts, {}
            observations, self._observations = self._observations, {}
        for counter, amount in counts.items():
            counter.inc(amount)
        for histogram, pending in observations.items():
            histogram._sum.inc(pending.total)
            for bucket, count in zip(histogram._buckets, pending.counts, strict=True):
                if count:
                    bucket.inc(count)

    def forget(self) -> None:
        """Drop what is pending (a forked child: its parent flushes its own counts)."""
        self._lock = threading.Lock()
        self._counts = {}
        self._observations = {}


# The process's tally: what the poll path counts (deployd.metrics.requests, deployd.metrics.hooks).
TALLY = Tally()
flush = TALLY.flush

os.register_at_fork(after_in_child=TALLY.forget)
atexit.register(flush)
