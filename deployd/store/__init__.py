"""Where channels, their history and revocations live: Redis in production, memory for development.

Both stores keep the same promises (tests/store runs one suite against each): a publish is one
atomic step, history only grows, and a reader sees a complete old or complete new channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from deployd.config import Settings


@dataclass(frozen=True)
class ChannelRecord:
    """One published version of a channel document."""

    name: str
    sequence: int
    document: dict[str, Any]
    source: str
    digest: str
    published_at: str
    publisher: str
    summary: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sequence": self.sequence,
            "document": self.document,
            "source": self.source,
            "digest": self.digest,
            "published_at": self.published_at,
            "publisher": self.publisher,
            "summary": self.summary,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChannelRecord:
        return cls(**{key: data[key] for key in cls.__dataclass_fields__})


class Store(Protocol):
    def ping(self) -> None:
        """Raise StoreUnavailableError unless the store answers."""

    def sequences(self) -> dict[str, int]:
        """Every channel's current sequence."""

    def get_channel(self, name: str) -> ChannelRecord | None: ...

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
        """Make `document` the channel's current version in one atomic step.

        The sequence goes up by one, history gains the record and the generation moves.
        With `expected_sequence` (0 for a new channel), raise PreconditionFailedError when the
        channel is no longer at that sequence.
        """

    def history(self, name: str) -> list[ChannelRecord]:
        """Every published version, oldest first."""

    def history_entry(self, name: str, sequence: int) -> ChannelRecord | None: ...

    def revoke(self, jti: str, *, reason: str = "", by: str = "") -> bool:
        """Record a revocation; False when the license was already revoked."""

    def is_revoked(self, jti: str) -> bool: ...

    def revocations_since(self, offset: int) -> tuple[list[str], int]:
        """License ids revoked after position `offset` of the revocation log, and the new offset."""

    def generation(self) -> int:
        """A counter that moves on every publish and revocation."""

    def add_counts(self, window: int, increments: Mapping[str, int]) -> dict[str, int]:
        """Add rate-limit `increments` to the counters of `window`; return the new totals."""


def open_store(settings: Settings) -> Store:
    """The store `settings` names: Redis when `redis_url` is set, else an empty memory store."""
    if settings.redis_url:
        from deployd.store.redis import RedisStore

        return RedisStore.from_url(settings.redis_url)
    from deployd.store.memory import MemoryStore

    return MemoryStore()
