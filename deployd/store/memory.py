"""The embedded store: one process's memory (the development default; nothing is shared).

Records are kept as JSON text, as Redis keeps them: a caller that changes a returned document
changes only its own copy, and a document Redis would refuse is refused here too.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from deployd.errors import ConflictError, PreconditionFailedError
from deployd.store import (
    ADMIN_ACTIONS,
    EVERY_CHANNEL,
    ChannelRecord,
    PublisherRecord,
    check_offset,
    revocation_entry,
)
from deployd.timestamps import utc_now


class MemoryStore:
    """Thread-safe; every method holds one lock, so each is atomic."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._history: dict[str, list[str]] = {}  # name -> JSON records, index = sequence - 1
        self._revoked: dict[str, str] = {}  # jti -> JSON {revokedAt, reason, by}
        self._revocation_log: list[str] = []
        self._generation = 0
        self._counts: dict[tuple[int, str], int] = {}
        self._publishers: dict[str, PublisherRecord] = {}

    def ping(self) -> None:
        return None

    def sequences(self) -> dict[str, int]:
        with self._lock:
            return {name: len(records) for name, records in self._history.items()}

    def get_channel(self, name: str) -> ChannelRecord | None:
        with self._lock:
            records = self._history.get(name)
            raw = records[-1] if records else None
        return ChannelRecord.from_json(raw) if raw else None

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
            current = len(self._history.get(name, ()))
            if expected_sequence is not None and expected_sequence != current:
                raise PreconditionFailedError(
                    f"channel {name!r} is at sequence {current}, not {expected_sequence}"
                )
            payload = ChannelRecord(
                name=name,
                sequence=current + 1,
                document=document,
                source=source,
                digest=digest,
                published_at=utc_now(),
                publisher=publisher,
                summary=summary,
            ).to_json()
            self._history.setdefault(name, []).append(payload)
            self._generation += 1
        return ChannelRecord.from_json(payload)

    def history(self, name: str) -> list[ChannelRecord]:
        with self._lock:
            records = list(self._history.get(name, ()))
        return [ChannelRecord.from_json(raw) for raw in records]

    def history_entry(self, name: str, sequence: int) -> ChannelRecord | None:
        with self._lock:
            records = self._history.get(name, [])
            raw = records[sequence - 1] if 1 <= sequence <= len(records) else None
        return ChannelRecord.from_json(raw) if raw else None

    def revoke(self, jti: str, *, reason: str = "", by: str = "") -> bool:
        entry = revocation_entry(reason, by)
        with self._lock:
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
            return self._revocation_log[offset:], max(offset, len(self._revocation_log))

    def generation(self) -> int:
        with self._lock:
            return self._generation

    def add_counts(self, window: int, increments: Mapping[str, int]) -> dict[str, int]:
        with self._lock:
            for key in [k for k in self._counts if k[0] < window]:
                del self._counts[key]
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
