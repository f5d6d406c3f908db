"""One server process's fleet: its view, its recorder and the background tasks that keep them
in step with the store. The poll path calls `identify`, `current_release` and `check_in`; the
refresher runs `sync`, `flush` and `maintain`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from deployd.errors import InstanceLimitError, StoreUnavailableError
from deployd.fleet.instances import Caller, caller_from_environ
from deployd.fleet.model import CheckIn, InstanceChange
from deployd.fleet.recorder import CheckInRecorder, FleetCounters
from deployd.fleet.view import FleetView
from deployd.licensing.tokens import VerifiedLicense
from deployd.store import Store

logger = logging.getLogger(__name__)

FEED_CAP = 100_000  # change-feed entries kept; a worker further behind loads a snapshot
SNAPSHOT_CHUNK = 2_000  # instances per round trip when a worker loads its view
FEED_CHUNK = 5_000  # changes per round trip when it catches up
MAX_FEED_READS = 20  # per refresh round: a worker further behind catches up over several
SWEEP_INTERVAL_SECONDS = 60.0
SWEEP_STEP = 1_000  # instances expired per round trip
SWEEP_STEPS = 10  # round trips per sweep: what is left waits for the next one
ADOPTION_KEEP_HOURS = 8 * 24
SEEN_GRANULARITY_SECONDS = 60.0  # last seen is recorded to the minute


class Fleet:
    def __init__(
        self,
        store: Store,
        *,
        ttl_seconds: float,
        clock: Callable[[], float] = time.time,
        max_pending: int = 50_000,
    ) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self.counters = FleetCounters()
        self.view = FleetView()
        self.recorder = CheckInRecorder(
            store, counters=self.counters, feed_cap=FEED_CAP, max_pending=max_pending
        )
        self.recorder.refused_hooks.append(self._forget)
        self._snapshot_cursor: str | None = None
        self._snapshot_position = ""
        self._snapshot: list[InstanceChange] = []
        self._next_sweep = 0.0
        self._adoption_hour = -1

    # The poll path: memory only.

    def identify(
        self, environ: Mapping[str, object], license: VerifiedLicense
    ) -> tuple[str, Caller]:
        """The instance key of the caller; BadRequestError for a malformed instance header,
        InstanceLimitError for a new instance past the license's maxInstances."""
        caller = caller_from_environ(environ)
        key = caller.key(license.customer)
        cap = license.max_instances
        if (
            cap is not None
            and not self.view.knows(key)
            and self.view.instances_of(license.customer) >= cap
        ):
            raise InstanceLimitError(
                f"this license allows {cap} instances, and that many have polled recently;"
                " an instance not seen for the configured time frees its place"
            )
        return key, caller

    def current_release(self, key: str) -> str | None:
        """The release the instance runs, as far as this worker knows (part 3 of the fleet
        loop): the one it reported running, else the one last served to it."""
        return self.view.running_release(key)

    def check_in(
        self,
        key: str,
        license: VerifiedLicense,
        caller: Caller,
        *,
        channel: str,
        served: str,
    ) -> None:
        """Note that `key` was just served `served` (view now, store at the next flush).

        A poll that changes nothing the fleet knows (same release served, last seen less than
        SEEN_GRANULARITY_SECONDS ago by any worker) is not recorded again: a fleet polling every
        few seconds costs a store write per instance and minute, not per poll."""
        now = self.clock()
        known = self.view.known(key)
        if (
            known is not None
            and known.served == served
            and known.subject == license.customer
            and now - known.last_seen < SEEN_GRANULARITY_SECONDS
        ):
            return
        if not self.view.note_served(key, license.customer, served, now):
            self.counters.view_full += 1
        self.recorder.note(
            CheckIn(
                key=key,
                subject=license.customer,
                agent_id=caller.agent_id,
                channel=channel,
                served=served,
                seen=now,
                agent_version=caller.agent_version,
                kubernetes_version=caller.kubernetes_version,
                user_agent=caller.user_agent,
                max_instances=license.max_instances,
            )
        )

    def record_report_release(self, instance_key: str, release: str) -> None:
        """For the rollouts part: the instance reported running `release` (view now, store at
        the next flush). `instance_key` is `deployd.fleet.instances.instance_key(sub, id)`."""
        self.view.note_reported(instance_key, release)
        self.recorder.note_reported(instance_key, release)

    def running_release(self, instance_key: str) -> str | None:
        return self.view.running_release(instance_key)

    def report(self) -> dict[str, int | bool]:
        """What /readyz says of this worker's fleet: its view and its counters."""
        counters = self.counters
        return {
            "loaded": self.view.position is not None,
            "instances": len(self.view),
            "pendingCheckIns": self.recorder.pending,
            "recorded": counters.recorded,
            "droppedFull": counters.dropped_full,
            "droppedUnreachable": counters.dropped_unreachable,
            "refusedOverLimit": counters.refused_over_limit,
            "reportsDropped": counters.reports_dropped,
            "viewFull": counters.view_full,
            "expired": counters.expired,
        }

    # Background tasks (deployd.server.refresher).

    def flush(self) -> bool:
        return self.recorder.flush()

    def sync(self) -> bool:
        """Load the view (in chunks, over rounds) or bring it up to date from the feed."""
        try:
            if self.view.position is None:
                self._load_chunk()
                return True
            for _ in range(MAX_FEED_READS):
                read = self.store.instance_changes(self.view.position, FEED_CHUNK)
                if not read.complete:
                    logger.info("fleet view fell behind the change feed; loading it again")
                    self.view.position = None
                    return True
                self.view.apply(read.changes, read.position)
                if len(read.changes) < FEED_CHUNK:
                    break
            return True
        except StoreUnavailableError:
            return False

    def _load_chunk(self) -> None:
        chunk = self.store.instance_snapshot(self._snapshot_cursor or "", SNAPSHOT_CHUNK)
        if self._snapshot_cursor is None:
            self._snapshot_position = chunk.position
            self._snapshot = []
        self._snapshot.extend(chunk.changes)
        self._snapshot_cursor = chunk.cursor
        if chunk.cursor is None:
            loaded, self._snapshot = self._snapshot, []
            self.view.replace(loaded, self._snapshot_position)
            # What this worker served but did not flush yet stays remembered.
            for check_in in self.recorder.unflushed():
                self.view.note_served(
                    check_in.key, check_in.subject, check_in.served, check_in.seen
                )

    def maintain(self) -> bool:
        """Expire instances not seen for the TTL (bounded steps, once a minute) and write the
        hourly adoption snapshot (once per hour, across every worker)."""
        now = self.clock()
        try:
            if now >= self._next_sweep:
                # A quarter of the TTL, at most a minute: an instance outlives it by that at most.
                self._next_sweep = now + min(SWEEP_INTERVAL_SECONDS, self.ttl_seconds / 4)
                self.sweep(now)
            hour = int(now // 3600)
            if hour != self._adoption_hour:
                self.store.snapshot_adoption(hour, keep_hours=ADOPTION_KEEP_HOURS)
                self._adoption_hour = hour
        except StoreUnavailableError:
            return False
        return True

    def sweep(self, now: float) -> int:
        """Expire what was last seen more than the TTL before `now`; how many went."""
        cutoff = now - self.ttl_seconds
        removed = 0
        for _ in range(SWEEP_STEPS):
            gone = self.store.expire_instances(cutoff, SWEEP_STEP, feed_cap=FEED_CAP)
            removed += gone
            if gone < SWEEP_STEP:
                break
        self.counters.expired += removed
        self.view.expire(cutoff, SWEEP_STEP * SWEEP_STEPS)
        return removed

    def _forget(self, keys: list[str]) -> None:
        for key in keys:
            self.view.forget(key)
