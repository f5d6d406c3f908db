"""Where channels, their history and revocations live: Redis in production, memory for development.

Both stores keep the same promises (tests/store runs one suite against each): a publish is one
atomic step, history only grows, and a reader sees a complete old or complete new channel. Both
keep records as JSON, so what one accepts and gives back the other does too.

A store can lose what it had: Redis restarted without persistence comes back empty, one restarted
from an RDB snapshot comes back older. The design that keeps workers from serving a store that is
gone, and sequence numbers from ever naming two documents:

- **Identity.** A store is *initialised* once (`initialize`, run by ``deployd store init`` or a
  restore; the embedded store does it when created): that writes a random *epoch*. A store
  without an epoch (Redis restarted empty, a new database) is never served from and takes no
  publish or revocation: it answers StoreUninitializedError (503 ``store_uninitialized``) until
  someone initialises it or restores a backup. A restore writes a new epoch too.
- **Going back is noticed.** Workers (deployd.server.view.ServerState) read the epoch with the
  generation (`marker`, one round trip); an epoch that changed, a generation, a channel's sequence
  or the revocation log that went backwards means the store was replaced or went back in time:
  the worker drops everything it derived from the old store and reloads.
- **Sequences only go up.** The store keeps *high-water marks* (`floors`): per channel, a sequence
  at least as high as any that was ever served; the key `*` is a floor for every channel. A
  publish takes max(current, floor) + 1. Workers remember the highest sequence they saw of each
  channel and, when they notice the store went back or was replaced, record it with
  `raise_floors`; a backup carries the marks (and the current sequences count as marks when it
  is restored); ``deployd store init --sequence-floor N`` starts every channel above N. So after a
  loss the next publish gets a sequence above every one a running worker served, and a sequence
  never names two documents as long as one worker that served it, a backup or the operator
  remembers it (see docs/security.md, *Redis loses data or goes back in time*).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

from deployd.errors import StoreUninitializedError
from deployd.protocol import utc_now
from deployd.rollouts.records import OutcomeCounts, Report, RolloutEvent
from deployd.server.settings import Settings

# The floors key that applies to every channel (channel names cannot contain "*").
ALL_CHANNELS = "*"

# Rollouts: how long a release's reports are kept after the last one, and how many halts and
# resumes each channel's log keeps.
ROLLOUT_RETENTION_SECONDS = 30 * 24 * 3600
ROLLOUT_LOG_LENGTH = 1000


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


# What a publisher record made before scopes existed may do: everything (`deployd.publishers`).
ADMIN_ACTIONS: tuple[str, ...] = ("admin",)
EVERY_CHANNEL: tuple[str, ...] = ("*",)


@dataclass(frozen=True)
class PublisherRecord:
    """A publisher credential: its name, the SHA-256 of its token (never the token), when it
    was made and, once it is, revoked, and its scopes: the `actions` it may take and the
    `channels` (names or globs) it may change. A record without scopes (written before they
    existed) reads as ``admin`` on every channel."""

    name: str
    token_hash: str
    created_at: str
    revoked_at: str | None = None
    actions: tuple[str, ...] = ADMIN_ACTIONS
    channels: tuple[str, ...] = EVERY_CHANNEL

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> str:
        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_json(cls, raw: str | bytes) -> PublisherRecord:
        data = json.loads(raw)
        return cls(
            name=data["name"],
            token_hash=data["token_hash"],
            created_at=data["created_at"],
            revoked_at=data.get("revoked_at"),
            actions=tuple(data.get("actions", ADMIN_ACTIONS)),
            channels=tuple(data.get("channels", EVERY_CHANNEL)),
        )


@dataclass(frozen=True)
class StoreMarker:
    """What a worker reads on every refresh: the store's identity and its change counter."""

    epoch: str | None  # None: the store was never initialised (or lost everything)
    generation: int


@dataclass(frozen=True)
class Persistence:
    """How the store keeps its data across a restart, as far as it can tell."""

    checked: bool  # False: the server refused to say (managed Redis without CONFIG)
    persisted: bool  # something survives a restart (AOF or RDB snapshots)
    description: str  # e.g. "appendonly=yes appendfsync=everysec; save='3600 1'"


@dataclass(frozen=True)
class StoreContents:
    """Everything a backup holds; what `export` gives and `restore` takes."""

    epoch: str | None
    generation: int
    channels: dict[str, list[ChannelRecord]]  # name -> history, oldest first
    revocations: list[tuple[str, str]]  # (jti, JSON {revokedAt, reason, by}), in revocation order
    publishers: list[PublisherRecord]
    floors: dict[str, int]

    def high_water_marks(self) -> dict[str, int]:
        """The floors, raised to every channel's current sequence."""
        marks = dict(self.floors)
        for name, history in self.channels.items():
            if history:
                marks[name] = max(marks.get(name, 0), history[-1].sequence)
        return marks


class Store(Protocol):
    def ping(self) -> None:
        """Raise StoreUnavailableError unless the store answers."""

    def sequences(self) -> dict[str, int]:
        """Every channel's current sequence."""

    def marker(self) -> StoreMarker:
        """The epoch and the generation, read together."""

    def initialize(self, *, floors: Mapping[str, int] | None = None) -> str:
        """Give a store that has no epoch a new one (and raise its `floors`); return the epoch.

        Raises ConflictError when the store is initialised already.
        """

    def floors(self) -> dict[str, int]:
        """The high-water marks: channel (or ALL_CHANNELS) -> a sequence publishes stay above."""

    def raise_floors(self, marks: Mapping[str, int]) -> None:
        """Make each floor at least the mark given (never lowers one). Works uninitialised too,
        so workers can record what they served before someone runs ``deployd store init``."""

    def export(self) -> StoreContents:
        """Everything but rate-limit counters, for a backup."""

    def restore(self, contents: StoreContents, *, force: bool = False) -> str:
        """Replace the store's contents with `contents` under a new epoch; return the epoch.

        Floors become the highest of the store's floors and sequences before, and the backup's.
        Raises ConflictError when the store holds channels, revocations or publishers, unless
        `force`.
        """

    def persistence(self) -> Persistence:
        """Whether the store survives a restart."""

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

        The sequence becomes max(current, floor) + 1, history gains the record and the
        generation moves. Raises StoreUninitializedError on a store without an epoch.
        With `expected_sequence` (0 for a new channel), raise PreconditionFailedError when the
        channel is no longer at that sequence; without it, concurrent publishes all land, each
        with its own sequence.
        """

    def history(self, name: str) -> list[ChannelRecord]:
        """Every published version, oldest first (empty for an unknown channel)."""

    def history_entry(self, name: str, sequence: int) -> ChannelRecord | None:
        """The record published as `sequence`, or None."""

    def revoke(self, jti: str, *, reason: str = "", by: str = "") -> bool:
        """Record a revocation; False when the license was already revoked.

        Raises StoreUninitializedError on a store without an epoch."""

    def is_revoked(self, jti: str) -> bool: ...

    def revocations_since(self, offset: int) -> tuple[list[str], int]:
        """License ids revoked after position `offset` of the revocation log, and the new offset.

        Start at 0 and pass back the offset returned to read only what is new. The new offset is
        the length of the log, so it is smaller than `offset` only when the log shrank (the
        store went back in time).
        """

    def generation(self) -> int:
        """A counter that moves on every publish and revocation."""

    def add_counts(self, window: int, increments: Mapping[str, int]) -> dict[str, int]:
        """Add rate-limit `increments` to the counters of `window`; return the new totals."""

    def add_publisher(
        self,
        name: str,
        token_hash: str,
        *,
        actions: tuple[str, ...] = ADMIN_ACTIONS,
        channels: tuple[str, ...] = EVERY_CHANNEL,
    ) -> PublisherRecord:
        """Let the token whose SHA-256 is `token_hash` act as `name` within its scopes
        (`actions` on `channels`, already checked by `deployd.publishers.Scopes`).

        Raises ConflictError when `name` is an active publisher already (a revoked name may be
        given a new token) or when the hash is in use. Publisher changes leave the generation.
        """

    def publishers(self) -> list[PublisherRecord]:
        """Every publisher ever added, active and revoked, by name."""

    def revoke_publisher(self, name: str) -> bool:
        """Stop `name`'s token from working; False when `name` is not an active publisher."""

    def publisher_for_hash(self, token_hash: str) -> PublisherRecord | None:
        """The record of the active publisher whose token has this SHA-256, or None."""

    # --- rollouts: reports, health, halts ---

    def record_outcomes(self, reports: Sequence[Report]) -> dict[tuple[str, str], OutcomeCounts]:
        """Record each report as its instance's latest outcome for its (channel, release), in
        order; return the new counts of every (channel, release) the reports touched.

        Each instance counts once per release, by its latest outcome, so reading counts is O(1).
        Kept for ROLLOUT_RETENTION_SECONDS after the last report on the release.
        """

    def outcome_counts(self, channel: str) -> dict[str, OutcomeCounts]:
        """Release -> its outcome counts, for every release of `channel` with reports."""

    def halt_release(self, event: RolloutEvent) -> bool:
        """Halt `event.release` of `event.channel` and log `event`, in one step, once: False (and
        nothing written) when it is halted already. Moves the generation."""

    def resume_release(self, event: RolloutEvent) -> bool:
        """Lift the halt of `event.release`, forget its reported outcomes (its policy starts
        over) and log `event`; False (nothing changed) when it was not halted. Moves the
        generation."""

    def halts(self) -> dict[str, dict[str, RolloutEvent]]:
        """Channel -> release -> the halt in force on it."""

    def rollout_events(self, channel: str) -> list[RolloutEvent]:
        """The channel's halts and resumes, oldest first (the newest ROLLOUT_LOG_LENGTH)."""

    def release_counts(self, channel: str) -> dict[str, int]:
        """Release -> instances currently on it. Minimal version until the fleet branch's:
        instances by the release they last reported applied."""


def open_store(settings: Settings, *, timeout: float | None = None) -> Store:
    """The store `settings` names: Redis when `redis_url` is set, else an empty memory store.

    `timeout`: seconds a Redis connect or reply is awaited (default: RedisStore.from_url's)."""
    if settings.redis_url:
        from deployd.store.redis import RedisStore

        return RedisStore.from_url(settings.redis_url, timeout=timeout)
    from deployd.store.memory import MemoryStore

    return MemoryStore()


def new_epoch() -> str:
    """A fresh store identity: when it was made and 64 random bits."""
    return f"{utc_now()}/{secrets.token_hex(8)}"


def next_sequence(current: int, floors: Mapping[str, int], name: str) -> int:
    """The sequence a publish of `name` gets: above the current one and above its floors."""
    return max(current, floors.get(name, 0), floors.get(ALL_CHANNELS, 0)) + 1


def uninitialized(what: str) -> StoreUninitializedError:
    return StoreUninitializedError(
        f"{what}: the store is not initialised (new, or it lost its data); run"
        " `deployd store init` for a new empty store or `deployd store restore FILE` from a backup"
    )


def check_offset(offset: int) -> None:
    """Refuse a revocation-log offset that no read ever returned."""
    if offset < 0:
        raise ValueError(f"revocation log offset must be 0 or more, not {offset}")


def revocation_entry(reason: str, by: str) -> str:
    """What is kept about one revocation: JSON {revokedAt, reason, by}."""
    return json.dumps({"revokedAt": utc_now(), "reason": reason, "by": by})
