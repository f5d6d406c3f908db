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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

from deployd.errors import ConflictError, StoreUninitializedError
from deployd.fleet.model import CheckIn, FeedRead, FlushOutcome, InstanceRecord, Snapshot
from deployd.fleet.paging import FleetPage, FleetQuery
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


# Customer records per store: one per license subject (deployd.customers).
MAX_CUSTOMERS = 100_000


@dataclass(frozen=True)
class CustomerRecord:
    """What the server keeps about one license subject (`subject`, the license's `sub`),
    layered over the license's claims (deployd.customers checks the fields and applies them).

    `version` is the store's customers version when the record was last written.
    """

    subject: str
    channel: str | None = None
    extra_channels: tuple[str, ...] = ()
    pinned_release: str | None = None
    hold: bool = False
    notes: str = ""
    updated_at: str = ""
    updated_by: str = ""
    version: int = 0

    def settings(self) -> dict[str, Any]:
        """The fields a publisher sets, by their JSON names."""
        return {
            "channel": self.channel,
            "extraChannels": list(self.extra_channels),
            "pinnedRelease": self.pinned_release,
            "hold": self.hold,
            "notes": self.notes,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            **self.settings(),
            "updatedAt": self.updated_at,
            "updatedBy": self.updated_by,
            "version": self.version,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CustomerRecord:
        """A record as `to_dict` wrote it; TypeError or KeyError when it is not one."""
        record = cls(
            subject=data["subject"],
            channel=data.get("channel"),
            extra_channels=tuple(data.get("extraChannels", ())),
            pinned_release=data.get("pinnedRelease"),
            hold=data.get("hold", False),
            notes=data.get("notes", ""),
            updated_at=data.get("updatedAt", ""),
            updated_by=data.get("updatedBy", ""),
            version=data.get("version", 0),
        )
        _check_types(record)
        return record

    @classmethod
    def from_json(cls, raw: str | bytes) -> CustomerRecord:
        return cls.from_dict(json.loads(raw))


def _check_types(record: CustomerRecord) -> None:
    optional_texts = (record.channel, record.pinned_release)
    texts = (record.subject, record.notes, record.updated_at, record.updated_by)
    if (
        not all(isinstance(t, str) for t in texts)
        or not all(t is None or isinstance(t, str) for t in optional_texts)
        or not all(isinstance(c, str) for c in record.extra_channels)
        or not isinstance(record.hold, bool)
        or isinstance(record.version, bool)
        or not isinstance(record.version, int)
    ):
        raise TypeError(f"not a customer record of the expected types: {record!r}")


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
    # Customer records (deployd.customers), by subject; a backup from before them has none.
    customers: list[CustomerRecord] = field(default_factory=list)
    # The halts in force (deployd.rollouts): a restore must not resume a release halted for cause.
    halts: list[RolloutEvent] = field(default_factory=list)

    def high_water_marks(self) -> dict[str, int]:
        """The floors, raised to every channel's current sequence."""
        marks = dict(self.floors)
        for name, history in self.channels.items():
            if history:
                marks[name] = max(marks.get(name, 0), history[-1].sequence)
        return marks


@dataclass(frozen=True)
class EventRecord:
    """One entry of the event log (`deployd.events`): `id` is given by the store when it is
    appended (1, 2, 3 ... with no gaps, in the order the log holds them); `at` is RFC 3339 UTC;
    `actor` is a publisher name, or ``deployd`` for what the server did by itself."""

    id: int
    type: str
    at: str
    actor: str
    channel: str | None
    subject: str | None
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, raw: str | bytes) -> EventRecord:
        data = json.loads(raw)
        return cls(**{f.name: data[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class WebhookState:
    """Where webhook delivery stands in the store: the id of the last event handled (delivered
    or given up) and the delivery counters (delivered, failed, gave_up, missed)."""

    cursor: int
    counts: dict[str, int]


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

    # --- customers: customer records ---

    def customer(self, subject: str) -> CustomerRecord | None:
        """The record of license subject `subject`, or None."""

    def customers(self) -> list[CustomerRecord]:
        """Every customer record, by subject."""

    def customers_version(self) -> int:
        """A counter that moves on every change of a customer record (workers poll it)."""

    def update_customer(
        self,
        subject: str,
        change: Callable[[CustomerRecord | None], CustomerRecord | None],
    ) -> CustomerRecord | None:
        """Replace the record of `subject` by `change(current record)` in one atomic step (None
        deletes it) and return what was written; the customers version moves when it changed.

        The record written gets the new version. Raises StoreUninitializedError on a store
        without an epoch, ConflictError when a new record would pass MAX_CUSTOMERS.
        """

    # --- events: the event log and webhook delivery ---

    def append_event(self, event: EventRecord, *, keep: int) -> EventRecord:
        """Append `event` (its `id` is ignored) with the next id; keep only the `keep` newest
        events. Returns the event as stored, with its id. Works uninitialised too."""

    def read_events(
        self, *, after: int = 0, before: int | None = None, limit: int, oldest_first: bool
    ) -> list[EventRecord]:
        """At most `limit` events with `after` < id (< `before` when given): the oldest of them
        first when `oldest_first`, else the newest first."""

    def take_webhook_lease(self, owner: str, *, seconds: float) -> bool:
        """Hold (or keep holding) the one webhook-delivery lease for `seconds` as `owner`;
        False when another owner holds it."""

    def webhook_state(self) -> WebhookState:
        """The delivery cursor and counters."""

    def advance_webhook_cursor(self, owner: str, cursor: int, counts: Mapping[str, int]) -> bool:
        """Move the cursor to `cursor` and add `counts` to the counters, in one step, only while
        `owner` holds the lease (False, and nothing written, when it does not)."""

    # --- fleet: instances ---
    # deployd.fleet: the instances that poll, written in batches by each worker's background
    # refresher, read back by the workers' views (through the change feed) and the read APIs.

    def record_checkins(self, checkins: Sequence[CheckIn], *, feed_cap: int) -> FlushOutcome:
        """Record check-ins (records, last-seen indexes, live counts per channel and release,
        the change feed capped near `feed_cap`); a new instance past its `max_instances` is
        refused, not recorded."""

    def record_reported(self, reports: Mapping[str, str], *, feed_cap: int) -> int:
        """Record the release each instance reported running; return how many were known
        (unknown instances are ignored)."""

    def instance(self, instance_id: str) -> InstanceRecord | None:
        """The instance's record, or None."""

    def release_counts(self, channel: str) -> dict[str, int]:
        """Release -> instances of `channel` running it (reported, else last served)."""

    def release_counts_of(self, channels: Sequence[str]) -> dict[str, dict[str, int]]:
        """`release_counts` of each of `channels` that has instances, in one read (a store of
        10,000 channels is not read one round trip per channel)."""

    def fleet_page(self, query: FleetQuery) -> FleetPage:
        """One page of instances matching `query`, newest seen first."""

    def instance_changes(self, after: str, limit: int) -> FeedRead:
        """Up to `limit` changes after feed position `after` ("" or the position a read or
        snapshot returned)."""

    def instance_snapshot(self, cursor: str, count: int) -> Snapshot:
        """About `count` instances from `cursor` ("" to start); the first chunk also says the
        feed position to replay from."""

    def expire_instances(self, before: float, limit: int, *, feed_cap: int) -> int:
        """Remove up to `limit` instances last seen before `before`, oldest first; how many."""

    def snapshot_adoption(self, hour: int, *, keep_hours: int) -> bool:
        """Write every channel's live counts as hour `hour`'s adoption point unless a worker
        did already (False then); points older than `keep_hours` go."""

    def adoption(self, channel: str, since_hour: int) -> list[tuple[int, dict[str, int]]]:
        """The channel's hourly points from `since_hour` on, oldest first."""

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


def too_many_customers() -> ConflictError:
    return ConflictError(
        f"the store holds {MAX_CUSTOMERS} customer records, its limit: delete records of"
        " customers that are gone before adding more"
    )


def restored_customers_version(before: int, customers: list[CustomerRecord]) -> int:
    """The customers version after a restore: above the store's and every restored record's,
    so every worker reads the records again."""
    return max([before, *(c.version for c in customers)]) + 1
