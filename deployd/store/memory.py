"""The embedded store: one process's memory (the development default; nothing is shared).

Records are kept as JSON text, as Redis keeps them: a caller that changes a returned document
changes only its own copy, and a document Redis would refuse is refused here too. It is
initialised when created (it cannot outlive its process, so it cannot come back older), unless
made with ``initialize=False`` to stand for a Redis that lost everything.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from deployd.errors import ConflictError, PreconditionFailedError
from deployd.protocol import utc_now
from deployd.rollouts.records import APPLIED, OutcomeCounts, Report, RolloutEvent
from deployd.store import (
    ADMIN_ACTIONS,
    EVERY_CHANNEL,
    ROLLOUT_LOG_LENGTH,
    ChannelRecord,
    Persistence,
    PublisherRecord,
    StoreContents,
    StoreMarker,
    check_offset,
    new_epoch,
    next_sequence,
    revocation_entry,
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
            )

    def restore(self, contents: StoreContents, *, force: bool = False) -> str:
        with self._lock:
            if not force and (self._history or self._revoked or self._publishers):
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

    # --- rollouts: reports, health, halts ---

    def record_outcomes(self, reports: Sequence[Report]) -> dict[tuple[str, str], OutcomeCounts]:
        with self._lock:
            touched: dict[tuple[str, str], OutcomeCounts] = {}
            for report in reports:
                key = (report.channel, report.release)
                self._rollouts.outcomes.setdefault(key, {})[report.instance] = report.outcome
                if report.outcome == APPLIED:
                    running = self._rollouts.running.setdefault(report.channel, {})
                    running[report.instance] = report.release
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

    def release_counts(self, channel: str) -> dict[str, int]:
        # Minimal version (rollouts branch) until the fleet branch's replaces it.
        with self._lock:
            counts: dict[str, int] = {}
            for release in self._rollouts.running.get(channel, {}).values():
                counts[release] = counts.get(release, 0) + 1
            return counts


class _Rollouts:
    """The rollouts part of the memory store (reports, halts, their log)."""

    def __init__(self) -> None:
        # (channel, release) -> instance -> latest outcome
        self.outcomes: dict[tuple[str, str], dict[str, str]] = {}
        self.running: dict[str, dict[str, str]] = {}  # channel -> instance -> release applied
        self.halts: dict[str, dict[str, str]] = {}  # channel -> release -> JSON RolloutEvent
        self.log: dict[str, list[str]] = {}  # channel -> JSON RolloutEvents, oldest first
