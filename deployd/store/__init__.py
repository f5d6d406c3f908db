"""Where channels, their history and revocations live: Redis in production, memory for development.

Both stores keep the same promises (tests/store runs one suite against each): a publish is one
atomic step, history only grows, and a reader sees a complete old or complete new channel. Both
keep records as JSON, so what one accepts and gives back the other does too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Protocol

from deployd.config import Settings
from deployd.timestamps import utc_now


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
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ChannelRecord:
        return cls(**{f.name: data[f.name] for f in fields(cls)})

    def to_json(self) -> str:
        """Compact JSON; raises ValueError/TypeError when the document is not plain JSON data."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, raw: str | bytes) -> ChannelRecord:
        return cls.from_dict(json.loads(raw))


@dataclass(frozen=True)
class PublisherRecord:
    """A publisher credential: its name, the SHA-256 of its token (never the token) and when it
    was made and, once it is, revoked."""

    name: str
    token_hash: str
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> str:
        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_json(cls, raw: str | bytes) -> PublisherRecord:
        data = json.loads(raw)
        return cls(**{f.name: data[f.name] for f in fields(cls)})


class Store(Protocol):
    def ping(self) -> None:
        """Raise StoreUnavailableError unless the store answers."""

    def sequences(self) -> dict[str, int]:
        """Every channel's current sequence."""

    def get_channel(self, name: str) -> ChannelRecord | None:
        """The channel's current record (complete, never half-written), or None."""

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
        channel is no longer at that sequence; without it, concurrent publishes all land, each
        with its own sequence.
        """

    def history(self, name: str) -> list[ChannelRecord]:
        """Every published version, oldest first (empty for an unknown channel)."""

    def history_entry(self, name: str, sequence: int) -> ChannelRecord | None:
        """The record published as `sequence`, or None."""

    def revoke(self, jti: str, *, reason: str = "", by: str = "") -> bool:
        """Record a revocation; False when the license was already revoked."""

    def is_revoked(self, jti: str) -> bool: ...

    def revocations_since(self, offset: int) -> tuple[list[str], int]:
        """License ids revoked after position `offset` of the revocation log, and the new offset.

        Start at 0 and pass back the offset returned to read only what is new.
        """

    def generation(self) -> int:
        """A counter that moves on every publish and revocation."""

    def add_counts(self, window: int, increments: Mapping[str, int]) -> dict[str, int]:
        """Add rate-limit `increments` to the counters of `window`; return the new totals."""

    def add_publisher(self, name: str, token_hash: str) -> PublisherRecord:
        """Let the token whose SHA-256 is `token_hash` publish as `name`.

        Raises ConflictError when `name` is an active publisher already (a revoked name may be
        given a new token) or when the hash is in use. Publisher changes leave the generation.
        """

    def publishers(self) -> list[PublisherRecord]:
        """Every publisher ever added, active and revoked, by name."""

    def revoke_publisher(self, name: str) -> bool:
        """Stop `name`'s token from working; False when `name` is not an active publisher."""

    def publisher_for_hash(self, token_hash: str) -> str | None:
        """The active publisher whose token has this SHA-256, or None."""


def open_store(settings: Settings, *, timeout: float | None = None) -> Store:
    """The store `settings` names: Redis when `redis_url` is set, else an empty memory store.

    `timeout`: seconds a Redis connect or reply is awaited (default: RedisStore.from_url's)."""
    if settings.redis_url:
        from deployd.store.redis import RedisStore

        return RedisStore.from_url(settings.redis_url, timeout=timeout)
    from deployd.store.memory import MemoryStore

    return MemoryStore()


def check_offset(offset: int) -> None:
    """Refuse a revocation-log offset that no read ever returned."""
    if offset < 0:
        raise ValueError(f"revocation log offset must be 0 or more, not {offset}")


def revocation_entry(reason: str, by: str) -> str:
    """What is kept about one revocation: JSON {revokedAt, reason, by}."""
    return json.dumps({"revokedAt": utc_now(), "reason": reason, "by": by})
