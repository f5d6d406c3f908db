"""The embedded store: one process's memory (the development default; nothing is shared)."""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping
from typing import Any

from deployd.errors import PreconditionFailedError
from deployd.store import ChannelRecord
from deployd.timestamps import utc_now


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._history: dict[str, list[ChannelRecord]] = {}
        self._revoked: dict[str, dict[str, str]] = {}
        self._revocation_log: list[str] = []
        self._generation = 0
        self._counts: dict[tuple[int, str], int] = {}

    def ping(self) -> None:
        return None

    def sequences(self) -> dict[str, int]:
        with self._lock:
            return {name: records[-1].sequence for name, records in self._history.items()}

    def get_channel(self, name: str) -> ChannelRecord | None:
        records = self._history.get(name)
        return records[-1] if records else None

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
            records = self._history.get(name, [])
            current = records[-1].sequence if records else 0
            if expected_sequence is not None and expected_sequence != current:
                raise PreconditionFailedError(
                    f"channel {name!r} is at sequence {current}, not {expected_sequence}"
                )
            record = ChannelRecord(
                name=name,
                sequence=current + 1,
                document=copy.deepcopy(document),
                source=source,
                digest=digest,
                published_at=utc_now(),
                publisher=publisher,
                summary=summary,
            )
            self._history[name] = [*records, record]
            self._generation += 1
            return record

    def history(self, name: str) -> list[ChannelRecord]:
        return list(self._history.get(name, []))

    def history_entry(self, name: str, sequence: int) -> ChannelRecord | None:
        records = self._history.get(name, [])
        return records[sequence - 1] if 1 <= sequence <= len(records) else None

    def revoke(self, jti: str, *, reason: str = "", by: str = "") -> bool:
        with self._lock:
            if jti in self._revoked:
                return False
            self._revoked[jti] = {"revokedAt": utc_now(), "reason": reason, "by": by}
            self._revocation_log.append(jti)
            self._generation += 1
            return True

    def is_revoked(self, jti: str) -> bool:
        return jti in self._revoked

    def revocations_since(self, offset: int) -> tuple[list[str], int]:
        with self._lock:
            return self._revocation_log[offset:], len(self._revocation_log)

    def generation(self) -> int:
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
