"""Check-ins batched in worker memory and flushed to the store by the background refresher.

The poll path calls `note` (a dict write under a lock, no I/O): the latest check-in of each
instance replaces any earlier one not flushed yet, so a fleet polling every few seconds costs one
store write per instance and flush interval. `flush` (a refresher task) sends the batch in
pipelined round trips of at most `batch_size` check-ins. Everything is bounded: at most
`max_pending` instances wait (a new one past that is dropped and counted); a flush that fails
loses that batch (counted) and leaves the rest for the next round. The counters live on one
`FleetCounters` object the metrics and readiness side can read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from deployd.errors import StoreUnavailableError
from deployd.fleet.model import CheckIn, FlushOutcome
from deployd.store import Store

logger = logging.getLogger(__name__)

# Called with the instance keys the store saw for the first time (the lead connects the events
# branch's "instance first seen" here). Called from the background thread, never a request.
FirstSeenHook = Callable[[list[CheckIn]], None]


@dataclass
class FleetCounters:
    """What the fleet recording did since the process started."""

    recorded: int = 0  # check-ins written to the store
    dropped_full: int = 0  # check-ins dropped because `max_pending` instances were waiting
    dropped_unreachable: int = 0  # check-ins lost in a flush the store did not take
    refused_over_limit: int = 0  # new instances the store refused (maxInstances, a race)
    reports_dropped: int = 0  # reported releases dropped (full, or the store was unreachable)
    view_full: int = 0  # instances the worker's view could not remember (it was full)
    expired: int = 0  # instances this worker's sweeps removed from the store


class CheckInRecorder:
    def __init__(
        self,
        store: Store,
        *,
        counters: FleetCounters,
        feed_cap: int,
        max_pending: int = 50_000,
        batch_size: int = 200,
    ) -> None:
        self.store = store
        self.counters = counters
        self.feed_cap = feed_cap
        self.max_pending = max_pending
        self.batch_size = batch_size
        self._lock = threading.Lock()
        self._pending: dict[str, CheckIn] = {}
        self._reported: dict[str, str] = {}
        # Hooks called with the check-ins of instances the store saw for the first time.
        self.first_seen_hooks: list[FirstSeenHook] = []
        # Called with the keys of new instances the store refused (over maxInstances).
        self.refused_hooks: list[Callable[[list[str]], None]] = []

    def note(self, check_in: CheckIn) -> None:
        """Queue `check_in` (replacing any unflushed one of the same instance)."""
        with self._lock:
            if check_in.key in self._pending or len(self._pending) < self.max_pending:
                self._pending[check_in.key] = check_in
                return
        self.counters.dropped_full += 1

    def note_reported(self, instance_id: str, release: str) -> None:
        """Queue the release `instance_id` reported running."""
        with self._lock:
            if instance_id in self._reported or len(self._reported) < self.max_pending:
                self._reported[instance_id] = release
                return
        self.counters.reports_dropped += 1

    def unflushed(self) -> list[CheckIn]:
        """The check-ins waiting for the next flush."""
        with self._lock:
            return list(self._pending.values())

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> bool:
        """Send what is queued, `batch_size` per round trip; False when the store failed."""
        with self._lock:
            pending, self._pending = self._pending, {}
            reported, self._reported = self._reported, {}
        batch = list(pending.values())
        ok = True
        for start in range(0, len(batch), self.batch_size):
            ok = self._flush_batch(batch[start : start + self.batch_size]) and ok
        if reported:
            try:
                self.store.record_reported(reported, feed_cap=self.feed_cap)
            except StoreUnavailableError as e:
                self.counters.reports_dropped += len(reported)
                logger.warning("reported releases not recorded: %s", e.message)
                ok = False
        return ok

    def _flush_batch(self, batch: list[CheckIn]) -> bool:
        try:
            outcome: FlushOutcome = self.store.record_checkins(batch, feed_cap=self.feed_cap)
        except StoreUnavailableError as e:
            self.counters.dropped_unreachable += len(batch)
            logger.warning("%d check-ins not recorded: %s", len(batch), e.message)
            return False
        self.counters.recorded += len(batch) - len(outcome.refused)
        if outcome.refused:
            self.counters.refused_over_limit += len(outcome.refused)
            for refused_hook in self.refused_hooks:
                refused_hook(outcome.refused)
        if outcome.new and self.first_seen_hooks:
            new = set(outcome.new)
            first = [c for c in batch if c.key in new]
            for hook in self.first_seen_hooks:
                try:
                    hook(first)
                except Exception:
                    logger.exception("instance first-seen hook failed")
        return True
