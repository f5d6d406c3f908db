"""The worker's batch of accepted reports, flushed to the store by the background refresher.

Accepting a report costs the request no store round trip: it is appended to a bounded queue
here; `flush` (a refresher task) writes the batch with one store call per release it touches and
hands the new counts to `on_flushed` (the halt check). A full queue refuses the report (the
caller retries later) and counts it; a batch the store refuses is put back in front of the queue
up to its bound, and what does not fit is dropped and counted.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from deployd.errors import StoreUnavailableError
from deployd.rollouts.records import OutcomeCounts, Report
from deployd.store import Store

logger = logging.getLogger(__name__)

DEFAULT_MAX_QUEUED = 10_000
MAX_BATCH = 1_000

FlushedCounts = dict[tuple[str, str], OutcomeCounts]


class ReportQueue:
    def __init__(
        self,
        store: Store,
        *,
        on_flushed: Callable[[FlushedCounts], None] | None = None,
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        self.store = store
        self.on_flushed = on_flushed
        self.max_queued = max_queued
        self._queue: deque[Report] = deque()
        self._lock = threading.Lock()
        self.accepted = 0
        self.refused = 0  # the queue was full
        self.dropped = 0  # lost after the store refused them
        self.flushed = 0
        self.out_of_window = 0  # well-formed but dated too far from now: dropped

    def __len__(self) -> int:
        return len(self._queue)

    def counts(self) -> dict[str, int]:
        """What this worker did with reports, for /readyz: queued now, and since it started
        accepted, written, refused (queue full), dropped (lost to a store outage) and dropped
        for a timestamp far from now."""
        return {
            "queued": len(self._queue),
            "accepted": self.accepted,
            "flushed": self.flushed,
            "refused": self.refused,
            "dropped": self.dropped,
            "outOfWindow": self.out_of_window,
        }

    def offer(self, report: Report) -> bool:
        """Queue `report`; False (counted) when the queue is full."""
        with self._lock:
            if len(self._queue) >= self.max_queued:
                self.refused += 1
                return False
            self._queue.append(report)
            self.accepted += 1
            return True

    def flush(self) -> bool:
        """Write what is queued (a refresher task); True when the store took all of it."""
        while True:
            batch = self._take()
            if not batch:
                return True
            try:
                counts = self.store.record_outcomes(batch)
            except StoreUnavailableError as e:
                self._put_back(batch)
                logger.warning("reports not written, will retry: %s", e.message)
                return False
            self.flushed += len(batch)
            if self.on_flushed is not None:
                self.on_flushed(counts)

    def _take(self) -> list[Report]:
        with self._lock:
            count = min(len(self._queue), MAX_BATCH)
            return [self._queue.popleft() for _ in range(count)]

    def _put_back(self, batch: list[Report]) -> None:
        with self._lock:
            room = max(0, self.max_queued - len(self._queue))
            kept = batch[-room:] if room else []
            lost = len(batch) - len(kept)
            self._queue.extendleft(reversed(kept))
            if lost:
                self.dropped += lost
                logger.warning(
                    "dropped %d reports: the store is unreachable and the queue full", lost
                )
