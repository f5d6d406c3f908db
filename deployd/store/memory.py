"""The embedded store: one process's memory (the development default; nothing is shared).

Records are kept as JSON text, as Redis keeps them: a caller that changes a returned document
changes only its own copy, and a document Redis would refuse is refused here too. It is
initialised when created (it cannot outlive its process, so it cannot come back older), unless
made with ``initialize=False`` to stand for a Redis that lost everything.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from deployd.errors import ConflictError, PreconditionFailedError
from deployd.fleet.ledger import Ledger, page_of
from deployd.fleet.model import CheckIn, FeedRead, FlushOutcome, InstanceRecord, Snapshot
from deployd.fleet.paging import FleetPage, FleetQuery
from deployd.protocol import utc_now
from deployd.rollouts.records import OutcomeCounts, Report, RolloutEvent
from deployd.store import (
    ADMIN_ACTIONS,
    EVERY_CHANNEL,
    MAX_CUSTOMERS,
    ROLLOUT_LOG_LENGTH,
    ChannelRecord,
    CustomerRecord,
    EventRecord,
    Persistence,
    PublisherRecord,
    StoreContents,
    StoreMarker,
    WebhookState,
    check_offset,
    new_epoch,
    next_sequence,
    restored_customers_version,
    revocation_entry,
    too_many_customers,
    uninitialized,
)


class MemoryStore:
    """Thread-safe; every method holds one lock, so each is atomic."""

    def __init__(self, *, initialize: bool = True) -> None:
        self._lock = threading.Lock()
        self._epoch: str | None = new_epoch() if initialize else None
        self._floors: dict[str, int] = {}
        # name -> {sequence: JSON record}, in publish order (sequences only go up)
        self._history: dict[str, dict[int, str]] = {}
        self._revoked: dict[str, str] = {}  # jti -> JSON {revokedAt, reason, by}
        self._revocation_log: list[str] = []
        self._generation = 0
        self._counts: dict[tuple[int, str], int] = {}
        self._publishers: dict[str, PublisherRecord] = {}
        self._customers: dict[str, str] = {}  # subject -> JSON CustomerRecord
        self._customers_version = 0
        self._rollouts = _Rollouts()

    def ping(self) -> None:
        return None

    def _current(self, name: str) -> int:
        records = self._history.get(name)
        return next(reversed(records)) if records else 0

    def sequences(self) -> dict[str, int]:
        with self._lock:
            return {name: self._current(name) for name in self._history}

    def get_channel(self, name: str) -> ChannelRecord | None:
        with self._lock:
            raw = self._history.get(name, {}).get(self._current(name))
        return ChannelRecord.from_json(raw) if raw else None

    def marker(self) -> StoreMarker:
        with self._lock:
            return StoreMarker(self._epoch, self._generation)

    def initialize(self, *, floors: Mapping[str, int] | None = None) -> str:
        with self._lock:
            if self._epoch is not None:
                raise ConflictError(f"the store is initialised already (epoch {self._epoch})")
            self._raise_floors(floors or {})
            self._epoch = new_epoch()
            return self._epoch

    def floors(self) -> dict[str, int]:
        with self._lock:
            return dict(self._floors)

    def raise_floors(self, marks: Mapping[str, int]) -> None:
        with self._lock:
            self._raise_floors(marks)

    def _raise_floors(self, marks: Mapping[str, int]) -> None:
        for name, mark in marks.items():
            self._floors[name] = max(self._floors.get(name, 0), int(mark))

    def export(self) -> StoreContents:
        with self._lock:
            return StoreContents(
                epoch=self._epoch,
                generation=self._generation,
                channels={
                    name: [ChannelRecord.from_json(raw) for raw in records.values()]
                    for name, records in self._history.items()
                },
                revocations=[(jti, self._revoked[jti]) for jti in self._revocation_log],
                publishers=[self._publishers[name] for name in sorted(self._publishers)],
                floors=dict(self._floors),
                customers=[
                    CustomerRecord.from_json(self._customers[s]) for s in sorted(self._customers)
                ],
            )

    def restore(self, contents: StoreContents, *, force: bool = False) -> str:
        with self._lock:
            if not force and (
                self._history or self._revoked or self._publishers or self._customers
            ):
                raise ConflictError("the store is not empty; restore over it only with --force")
            before = {name: self._current(name) for name in self._history}
            self._raise_floors(before)
            self._raise_floors(contents.floors)
            self._history = {
                name: {r.sequence: r.to_json() for r in history}
                for name, history in contents.channels.items()
                if history
            }
            self._revoked = dict(contents.revocations)
            self._revocation_log = [jti for jti, _entry in contents.revocations]
            self._publishers = {p.name: p for p in contents.publishers}
            self._customers = {c.subject: c.to_json() for c in contents.customers}
            self._customers_version = restored_customers_version(
                self._customers_version, contents.customers
            )
            self._generation = max(self._generation, contents.generation) + 1
            self._epoch = new_epoch()
            return self._epoch

    def persistence(self) -> Persistence:
        return Persistence(
            checked=True, persisted=False, description="memory of this process (embedded store)"
        )

    def publish(
        self,
        name: str,
        *,
        document: dict[str, Any],
        source: str,
        digest: str,
        publisher: str,
        summary: str,
        expected_sequence: int | None = None,
    ) -> ChannelRecord:
        with self._lock:
            if self._epoch is None:
                raise uninitialized(f"cannot publish {name!r}")
            current = self._current(name)
            if expected_sequence is not None and expected_sequence != current:
                raise PreconditionFailedError(
                    f"channel {name!r} is at sequence {current}, not {expected_sequence}"
                )
            sequence = next_sequence(current, self._floors, name)
            payload = ChannelRecord(
                name=name,
                sequence=sequence,
                document=document,
                source=source,
                digest=digest,
                published_at=utc_now(),
                publisher=publisher,
                summary=summary,
            ).to_json()
            self._history.setdefault(name, {})[sequence] = payload
            self._generation += 1
        return ChannelRecord.from_json(payload)

    def history(self, name: str) -> list[ChannelRecord]:
        with self._lock:
            records = list(self._history.get(name, {}).values())
        return [ChannelRecord.from_json(raw) for raw in records]

    def history_entry(self, name: str, sequence: int) -> ChannelRecord | None:
        with self._lock:
            raw = self._history.get(name, {}).get(sequence)
        return ChannelRecord.from_json(raw) if raw else None

    def revoke(self, jti: str, *, reason: str = "", by: str = "") -> bool:
        entry = revocation_entry(reason, by)
        with self._lock:
            if self._epoch is None:
                raise uninitialized("cannot record the revocation")
            if jti in self._revoked:
                return False
            self._revoked[jti] = entry
            self._revocation_log.append(jti)
            self._generation += 1
            return True

    def is_revoked(self, jti: str) -> bool:
        with self._lock:
            return jti in self._revoked

    def revocations_since(self, offset: int) -> tuple[list[str], int]:
        check_offset(offset)
        with self._lock:
            return self._revocation_log[offset:], len(self._revocation_log)

    def generation(self) -> int:
        with self._lock:
            return self._generation

    def add_counts(self, window: int, increments: Mapping[str, int]) -> dict[str, int]:
        with self._lock:
            for expired in [k for k in self._counts if k[0] < window]:
                del self._counts[expired]
            totals = {}
            for key, n in increments.items():
                total = self._counts.get((window, key), 0) + n
                self._counts[window, key] = total
                totals[key] = total
            return totals

    def add_publisher(
        self,
        name: str,
        token_hash: str,
        *,
        actions: tuple[str, ...] = ADMIN_ACTIONS,
        channels: tuple[str, ...] = EVERY_CHANNEL,
    ) -> PublisherRecord:
        with self._lock:
            existing = self._publishers.get(name)
            if existing is not None and existing.active:
                raise ConflictError(f"publisher {name!r} exists; revoke it first to replace it")
            if any(p.token_hash == token_hash for p in self._publishers.values()):
                raise ConflictError("that token is in use already")
            record = PublisherRecord(
                name=name,
                token_hash=token_hash,
                created_at=utc_now(),
                actions=tuple(actions),
                channels=tuple(channels),
            )
            self._publishers[name] = record
            return record

    def publishers(self) -> list[PublisherRecord]:
        with self._lock:
            return [self._publishers[name] for name in sorted(self._publishers)]

    def revoke_publisher(self, name: str) -> bool:
        with self._lock:
            existing = self._publishers.get(name)
            if existing is None or not existing.active:
                return False
            self._publishers[name] = replace(existing, revoked_at=utc_now())
            return True

    def publisher_for_hash(self, token_hash: str) -> PublisherRecord | None:
        with self._lock:
            for record in self._publishers.values():
                if record.active and hmac.compare_digest(record.token_hash, token_hash):
                    return record
            return None

    # --- customers: customer records ---

    def customer(self, subject: str) -> CustomerRecord | None:
        with self._lock:
            raw = self._customers.get(subject)
        return CustomerRecord.from_json(raw) if raw else None

    def customers(self) -> list[CustomerRecord]:
        with self._lock:
            raws = [self._customers[subject] for subject in sorted(self._customers)]
        return [CustomerRecord.from_json(raw) for raw in raws]

    def customers_version(self) -> int:
        with self._lock:
            return self._customers_version

    def update_customer(
        self,
        subject: str,
        change: Callable[[CustomerRecord | None], CustomerRecord | None],
    ) -> CustomerRecord | None:
        with self._lock:
            if self._epoch is None:
                raise uninitialized(f"cannot change customer {subject!r}")
            raw = self._customers.get(subject)
            current = CustomerRecord.from_json(raw) if raw else None
            wanted = change(current)
            if wanted == current:
                return current
            if wanted is None:
                del self._customers[subject]
                self._customers_version += 1
                return None
            if current is None and len(self._customers) >= MAX_CUSTOMERS:
                raise too_many_customers()
            self._customers_version += 1
            written = replace(wanted, subject=subject, version=self._customers_version)
            self._customers[subject] = written.to_json()
            return written

    # --- events: the event log and webhook delivery ---

    def _events_state(self) -> _EventsState:
        # Made on first use, so this block stays apart from the constructor.
        state: _EventsState | None = getattr(self, "_events", None)
        if state is None:
            state = self._events = _EventsState()
        return state

    def append_event(self, event: EventRecord, *, keep: int) -> EventRecord:
        with self._lock:
            state = self._events_state()
            state.last_id += 1
            payload = replace(event, id=state.last_id).to_json()
            state.log.append((state.last_id, payload))
            while len(state.log) > keep:
                state.log.popleft()
        return EventRecord.from_json(payload)

    def read_events(
        self, *, after: int = 0, before: int | None = None, limit: int, oldest_first: bool
    ) -> list[EventRecord]:
        with self._lock:
            chosen = [
                raw
                for event_id, raw in self._events_state().log
                if event_id > after and (before is None or event_id < before)
            ]
        chosen = chosen[:limit] if oldest_first else chosen[::-1][:limit]
        return [EventRecord.from_json(raw) for raw in chosen]

    def take_webhook_lease(self, owner: str, *, seconds: float) -> bool:
        with self._lock:
            state = self._events_state()
            now = time.monotonic()
            if state.lease_owner not in (None, owner) and state.lease_until > now:
                return False
            state.lease_owner, state.lease_until = owner, now + seconds
            return True

    def webhook_state(self) -> WebhookState:
        with self._lock:
            state = self._events_state()
            return WebhookState(state.cursor, dict(state.counts))

    def advance_webhook_cursor(self, owner: str, cursor: int, counts: Mapping[str, int]) -> bool:
        with self._lock:
            state = self._events_state()
            if state.lease_owner != owner or state.lease_until <= time.monotonic():
                return False
            state.cursor = max(state.cursor, cursor)
            for name, n in counts.items():
                state.counts[name] = state.counts.get(name, 0) + n
            return True

    # --- fleet: instances ---
    # The same layout as RedisStore's fleet block, in dicts: instance records, live counts per
    # (channel, release), a capped change feed and hourly adoption snapshots.

    def _fleet(self) -> Ledger:
        fleet: Ledger | None = getattr(self, "_fleet_ledger", None)
        if fleet is None:
            fleet = self._fleet_ledger = Ledger()
        return fleet

    def record_checkins(self, checkins: Sequence[CheckIn], *, feed_cap: int) -> FlushOutcome:
        new: list[str] = []
        refused: list[str] = []
        with self._lock:
            fleet = self._fleet()
            for check_in in checkins:
                old = fleet.records.get(check_in.key)
                if old is None:
                    cap = check_in.max_instances
                    if cap is not None and fleet.subject_count(check_in.subject) >= cap:
                        refused.append(check_in.key)
                        continue
                    new.append(check_in.key)
                    fleet.put(InstanceRecord.first(check_in), feed_cap)
                else:
                    fleet.put(old.merged(check_in), feed_cap)
        return FlushOutcome(new, refused)

    def record_reported(self, reports: Mapping[str, str], *, feed_cap: int) -> int:
        with self._lock:
            fleet = self._fleet()
            known = 0
            for key, release in reports.items():
                old = fleet.records.get(key)
                if old is not None:
                    known += 1
                    fleet.put(replace(old, reported=release), feed_cap)
            return known

    def instance(self, instance_id: str) -> InstanceRecord | None:
        with self._lock:
            return self._fleet().records.get(instance_id)

    def release_counts(self, channel: str) -> dict[str, int]:
        with self._lock:
            return dict(self._fleet().counts.get(channel, {}))

    def release_counts_of(self, channels: Sequence[str]) -> dict[str, dict[str, int]]:
        with self._lock:
            counts = self._fleet().counts
            return {name: dict(counts[name]) for name in channels if counts.get(name)}

    def fleet_page(self, query: FleetQuery) -> FleetPage:
        with self._lock:
            records = list(self._fleet().records.values())
        since = query.seen_since if query.seen_since is not None else float("-inf")
        ordered = sorted(
            (r for r in records if since <= r.last_seen <= query.top),
            key=lambda r: (-r.last_seen, r.key),
        )
        ordered = ordered[query.skip :] if query.cursor is not None else ordered
        return page_of(ordered, query)

    def instance_changes(self, after: str, limit: int) -> FeedRead:
        with self._lock:
            feed = self._fleet().feed
            position = int(after or 0)
            oldest = feed[0][0] if feed else None
            gap = oldest is not None and oldest > position + 1
            entries = [(n, change) for n, change in feed if n > position][:limit]
            last = str(entries[-1][0]) if entries else str(max(position, self._fleet().last))
            return FeedRead([c for _, c in entries], last, complete=not gap)

    def instance_snapshot(self, cursor: str, count: int) -> Snapshot:
        with self._lock:
            fleet = self._fleet()
            keys = sorted(fleet.records)
            start = int(cursor or 0)
            chunk = [fleet.records[k].change() for k in keys[start : start + count]]
            done = start + count >= len(keys)
            return Snapshot(chunk, None if done else str(start + count), str(fleet.last))

    def expire_instances(self, before: float, limit: int, *, feed_cap: int) -> int:
        with self._lock:
            fleet = self._fleet()
            gone = sorted(
                (r for r in fleet.records.values() if r.last_seen < before),
                key=lambda r: r.last_seen,
            )[:limit]
            for record in gone:
                fleet.remove(record, feed_cap)
            return len(gone)

    def snapshot_adoption(self, hour: int, *, keep_hours: int) -> bool:
        with self._lock:
            fleet = self._fleet()
            if hour in fleet.snapshot_hours:
                return False
            fleet.snapshot_hours.add(hour)
            for channel, counts in fleet.counts.items():
                points = fleet.adoption.setdefault(channel, {})
                points[hour] = dict(counts)
                for old in [h for h in points if h <= hour - keep_hours]:
                    del points[old]
            fleet.snapshot_hours = {h for h in fleet.snapshot_hours if h > hour - keep_hours}
            return True

    def adoption(self, channel: str, since_hour: int) -> list[tuple[int, dict[str, int]]]:
        with self._lock:
            points = self._fleet().adoption.get(channel, {})
            return sorted((h, dict(c)) for h, c in points.items() if h >= since_hour)

    # --- rollouts: reports, health, halts ---

    def record_outcomes(self, reports: Sequence[Report]) -> dict[tuple[str, str], OutcomeCounts]:
        with self._lock:
            touched: dict[tuple[str, str], OutcomeCounts] = {}
            for report in reports:
                key = (report.channel, report.release)
                self._rollouts.outcomes.setdefault(key, {})[report.instance] = report.outcome
                touched[key] = self._counts_of(key)
            return touched

    def _counts_of(self, key: tuple[str, str]) -> OutcomeCounts:
        counts: dict[str, int] = {}
        for outcome in self._rollouts.outcomes.get(key, {}).values():
            counts[outcome] = counts.get(outcome, 0) + 1
        return OutcomeCounts.of(counts)

    def outcome_counts(self, channel: str) -> dict[str, OutcomeCounts]:
        with self._lock:
            keys = [k for k in self._rollouts.outcomes if k[0] == channel]
            return {release: self._counts_of((name, release)) for name, release in keys}

    def halt_release(self, event: RolloutEvent) -> bool:
        with self._lock:
            halted = self._rollouts.halts.setdefault(event.channel, {})
            if event.release in halted:
                return False
            halted[event.release] = event.to_json()
            self._log_rollout_event(event)
            return True

    def resume_release(self, event: RolloutEvent) -> bool:
        with self._lock:
            halted = self._rollouts.halts.get(event.channel, {})
            if halted.pop(event.release, None) is None:
                return False
            self._rollouts.outcomes.pop((event.channel, event.release), None)
            self._log_rollout_event(event)
            return True

    def _log_rollout_event(self, event: RolloutEvent) -> None:
        log = self._rollouts.log.setdefault(event.channel, [])
        log.append(event.to_json())
        del log[:-ROLLOUT_LOG_LENGTH]
        self._generation += 1

    def halts(self) -> dict[str, dict[str, RolloutEvent]]:
        with self._lock:
            return {
                channel: {r: RolloutEvent.from_json(raw) for r, raw in halted.items()}
                for channel, halted in self._rollouts.halts.items()
                if halted
            }

    def rollout_events(self, channel: str) -> list[RolloutEvent]:
        with self._lock:
            return [RolloutEvent.from_json(raw) for raw in self._rollouts.log.get(channel, [])]


class _EventsState:
    """The memory store's event log, webhook lease, cursor and counters."""

    def __init__(self) -> None:
        self.log: deque[tuple[int, str]] = deque()
        self.last_id = 0
        self.lease_owner: str | None = None
        self.lease_until = 0.0
        self.cursor = 0
        self.counts: dict[str, int] = {}


class _Rollouts:
    """The rollouts part of the memory store (reports, halts, their log)."""

    def __init__(self) -> None:
        # (channel, release) -> instance -> latest outcome
        self.outcomes: dict[tuple[str, str], dict[str, str]] = {}
        self.halts: dict[str, dict[str, str]] = {}  # channel -> release -> JSON RolloutEvent
        self.log: dict[str, list[str]] = {}  # channel -> JSON RolloutEvents, oldest first
