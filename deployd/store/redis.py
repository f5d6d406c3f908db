"""The production store: Redis (redis-py), shared by every worker and replica.

Keys (all under `prefix`, default ``deployd:``):
  channels                hash  name -> current sequence
  channel:<name>          string JSON of the current ChannelRecord
  history:<name>          hash  sequence -> JSON of that ChannelRecord
  revoked                 hash  jti -> JSON {revokedAt, reason, by}
  revocations             list  jtis in the order they were revoked (read incrementally)
  generation              int   moves on every publish and revocation
  ratelimit:<window>      hash  key -> count in that minute (expires after two minutes)
  publishers              hash  publisher name -> JSON PublisherRecord (revoked ones kept)
  publisher-tokens        hash  token SHA-256 -> name, active publishers only
  epoch                   string the store's identity, written by `initialize` or `restore`
  floors                  hash  channel (or "*" for all) -> sequence publishes stay above
and the pub/sub channel `changes`, told of every publish and revocation. Rollouts keep their
keys under the hash tag ``{rollouts}`` (see `RolloutKeys`).

A publish is one MULTI/EXEC transaction guarded by WATCH on the channel's current record (and on
the epoch and floors), so readers see a complete old or complete new record and concurrent
publishers never lose an update. Why the epoch and floors exist: deployd/store/__init__.py.
Every redis-py error becomes StoreUnavailableError; messages name the server (host, port and
database), never the URL, which may carry a password.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.retry import Retry
from redis.typing import EncodableT, FieldT

from deployd.errors import (
    ConfigError,
    ConflictError,
    PreconditionFailedError,
    StoreUnavailableError,
)
from deployd.protocol import utc_now
from deployd.rollouts.records import APPLIED, OUTCOMES, OutcomeCounts, Report, RolloutEvent
from deployd.store import (
    ADMIN_ACTIONS,
    EVERY_CHANNEL,
    ROLLOUT_LOG_LENGTH,
    ROLLOUT_RETENTION_SECONDS,
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

CHANNELS = "channels"
CHANNEL = "channel:"
HISTORY = "history:"
REVOKED = "revoked"
REVOCATIONS = "revocations"
GENERATION = "generation"
RATELIMIT = "ratelimit:"
PUBLISHERS = "publishers"
PUBLISHER_TOKENS = "publisher-tokens"
EPOCH = "epoch"
FLOORS = "floors"
# Workers may listen here to learn of a change at once; they also poll `generation`.
CHANGES_TOPIC = "changes"

CONNECT_TIMEOUT_SECONDS = 1.0
READ_TIMEOUT_SECONDS = 2.0
HEALTH_CHECK_SECONDS = 15

T = TypeVar("T")


def _server_of(client: redis.Redis) -> str:
    """host:port/db (or the socket path) of `client`, for messages: never credentials."""
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


class RedisStore:
    """The Store on one Redis database; `prefix` lets several deployments share a database."""

    def __init__(self, client: redis.Redis, *, prefix: str = "deployd:") -> None:
        self.client = client
        self.prefix = prefix
        self.server = _server_of(client)

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "deployd:", timeout: float | None = None
    ) -> RedisStore:
        """A store on `url` (redis://, rediss:// or unix://) that fails fast when Redis is away.

        Connecting gives up after 1 s and a reply is awaited 2 s, then the call raises
        StoreUnavailableError: never retried here, since callers already decide what to do
        without the store (serve from cache, fail the command) and a retried timeout only doubles
        the wait. A connection that died while idle in the pool is replaced when next used.
        `timeout` replaces both limits (a worker's background refresh uses a short one).
        """
        try:
            client = redis.Redis.from_url(
                url,
                socket_connect_timeout=timeout or CONNECT_TIMEOUT_SECONDS,
                socket_timeout=timeout or READ_TIMEOUT_SECONDS,
                health_check_interval=HEALTH_CHECK_SECONDS,
                retry=Retry(NoBackoff(), 0),
            )
        except ValueError as e:
            # The URL itself is not repeated: it may carry a password.
            raise ConfigError(f"not a usable Redis URL: {e}") from e
        return cls(client, prefix=prefix)

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def _key(self, *parts: str) -> str:
        return self.prefix + "".join(parts)

    def _call(self, what: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except redis.RedisError as e:
            raise StoreUnavailableError(f"{what}: Redis at {self.server} failed: {e}") from e

    def _transaction(self, what: str, body: Callable[[Pipeline], T], *watched: str) -> T:
        """Run `body` in redis-py's WATCH/MULTI/EXEC loop (again whenever EXEC finds a watched key
        changed) and return what its last run, the one that committed, returned."""
        returned: list[T] = []

        def run(pipe: Pipeline) -> None:
            returned.append(body(pipe))

        self._call(what, lambda: self.client.transaction(run, *watched))
        return returned[-1]

    def ping(self) -> None:
        self._call("ping", self.client.ping)

    def sequences(self) -> dict[str, int]:
        raw = self._call("read sequences", lambda: self.client.hgetall(self._key(CHANNELS)))
        return {_text(name): int(seq) for name, seq in raw.items()}

    def get_channel(self, name: str) -> ChannelRecord | None:
        raw = self._call("read channel", lambda: self.client.get(self._key(CHANNEL, name)))
        return ChannelRecord.from_json(raw) if raw else None

    def marker(self) -> StoreMarker:
        epoch, generation = self._call(
            "read epoch", lambda: self.client.mget(self._key(EPOCH), self._key(GENERATION))
        )
        return StoreMarker(_text(epoch) if epoch else None, int(generation or 0))

    def initialize(self, *, floors: Mapping[str, int] | None = None) -> str:
        epoch_key, floors_key = self._key(EPOCH), self._key(FLOORS)
        epoch = new_epoch()

        def transaction(pipe: Pipeline) -> str:
            existing = pipe.get(epoch_key)
            if existing:
                raise ConflictError(f"the store is initialised already (epoch {_text(existing)})")
            raised = _raised(_read_floors(pipe, floors_key), floors or {})
            pipe.multi()
            if raised:
                pipe.hset(floors_key, mapping=_fields(raised))
            pipe.set(epoch_key, epoch)
            pipe.publish(self._key(CHANGES_TOPIC), "epoch")
            return epoch

        return self._transaction("initialise", transaction, epoch_key, floors_key)

    def floors(self) -> dict[str, int]:
        return self._call("read floors", lambda: _read_floors(self.client, self._key(FLOORS)))

    def raise_floors(self, marks: Mapping[str, int]) -> None:
        floors_key = self._key(FLOORS)

        def transaction(pipe: Pipeline) -> None:
            raised = _raised(_read_floors(pipe, floors_key), marks)
            pipe.multi()
            if raised:
                pipe.hset(floors_key, mapping=_fields(raised))

        self._transaction("record sequence floors", transaction, floors_key)

    def export(self) -> StoreContents:
        watched = [self._key(k) for k in (EPOCH, GENERATION, PUBLISHERS, FLOORS)]

        def transaction(pipe: Pipeline) -> StoreContents:
            # Every publish and revocation moves `generation`: a change while reading makes
            # redis-py read again, so the backup is one consistent moment.
            epoch = pipe.get(self._key(EPOCH))
            names = sorted(_text(n) for n in pipe.hkeys(self._key(CHANNELS)))
            channels = {name: _records(pipe.hvals(self._key(HISTORY, name))) for name in names}
            jtis = [_text(j) for j in pipe.lrange(self._key(REVOCATIONS), 0, -1)]
            entries = pipe.hgetall(self._key(REVOKED))
            publishers = [PublisherRecord.from_json(v) for v in pipe.hvals(self._key(PUBLISHERS))]
            contents = StoreContents(
                epoch=_text(epoch) if epoch else None,
                generation=int(pipe.get(self._key(GENERATION)) or 0),
                channels=channels,
                revocations=[(jti, _text(entries[jti.encode()])) for jti in jtis],
                publishers=sorted(publishers, key=lambda p: p.name),
                floors=_read_floors(pipe, self._key(FLOORS)),
            )
            pipe.multi()
            return contents

        return self._transaction("export", transaction, *watched)

    def restore(self, contents: StoreContents, *, force: bool = False) -> str:
        owned = [
            self._key(k) for k in (CHANNELS, REVOKED, REVOCATIONS, PUBLISHERS, PUBLISHER_TOKENS)
        ]
        watched = [*owned, self._key(EPOCH), self._key(FLOORS), self._key(GENERATION)]
        epoch = new_epoch()

        def transaction(pipe: Pipeline) -> str:
            before = {_text(n): int(s) for n, s in pipe.hgetall(self._key(CHANNELS)).items()}
            if not force and (before or any(pipe.exists(k) for k in owned)):
                raise ConflictError("the store is not empty; restore over it only with --force")
            floors = _merged(_read_floors(pipe, self._key(FLOORS)), before, contents.floors)
            generation = max(int(pipe.get(self._key(GENERATION)) or 0), contents.generation) + 1
            pipe.multi()
            for name in before:
                pipe.delete(self._key(CHANNEL, name), self._key(HISTORY, name))
            pipe.delete(*owned)
            self._write_contents(pipe, contents)
            if floors:
                pipe.hset(self._key(FLOORS), mapping=_fields(floors))
            pipe.set(self._key(GENERATION), generation)
            pipe.set(self._key(EPOCH), epoch)
            pipe.publish(self._key(CHANGES_TOPIC), "epoch")
            return epoch

        return self._transaction("restore", transaction, *watched)

    def _write_contents(self, pipe: Pipeline, contents: StoreContents) -> None:
        for name, history in contents.channels.items():
            if not history:
                continue
            payloads = {str(r.sequence): r.to_json() for r in history}
            pipe.hset(self._key(HISTORY, name), mapping=_fields(payloads))
            pipe.set(self._key(CHANNEL, name), history[-1].to_json())
            pipe.hset(self._key(CHANNELS), name, history[-1].sequence)
        if contents.revocations:
            pipe.hset(self._key(REVOKED), mapping=_fields(dict(contents.revocations)))
            pipe.rpush(self._key(REVOCATIONS), *(jti for jti, _entry in contents.revocations))
        for publisher in contents.publishers:
            pipe.hset(self._key(PUBLISHERS), publisher.name, publisher.to_json())
            if publisher.active:
                pipe.hset(self._key(PUBLISHER_TOKENS), publisher.token_hash, publisher.name)

    def persistence(self) -> Persistence:
        try:
            config = {
                _text(k): _text(v)
                for name in ("appendonly", "appendfsync", "save")
                for k, v in self.client.config_get(name).items()
            }
        except redis.ResponseError as e:
            # Managed Redis often disables CONFIG: say so rather than guess.
            return Persistence(False, False, f"could not be checked (CONFIG GET refused: {e})")
        except redis.RedisError as e:
            message = f"read persistence: Redis at {self.server} failed: {e}"
            raise StoreUnavailableError(message) from e
        aof = config.get("appendonly") == "yes"
        save = config.get("save", "")
        described = f"appendonly={config.get('appendonly')}"
        if aof:
            described += f" appendfsync={config.get('appendfsync')}"
        described += f"; save={save!r}"
        return Persistence(True, aof or bool(save.strip()), described)

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
        channels, current_key = self._key(CHANNELS), self._key(CHANNEL, name)
        history_key = self._key(HISTORY, name)

        epoch_key, floors_key = self._key(EPOCH), self._key(FLOORS)

        def transaction(pipe: Pipeline) -> ChannelRecord:
            # Every publish of this channel rewrites `current_key` in the same EXEC as the
            # sequence, so watching that key (and the rarely written epoch and floors) is enough
            # and other channels never interfere.
            if not pipe.exists(epoch_key):
                raise uninitialized(f"cannot publish {name!r}")
            current = int(pipe.hget(channels, name) or 0)
            if expected_sequence is not None and expected_sequence != current:
                raise PreconditionFailedError(
                    f"channel {name!r} is at sequence {current}, not {expected_sequence}"
                )
            record = ChannelRecord(
                name=name,
                sequence=next_sequence(current, _read_floors(pipe, floors_key), name),
                document=document,
                source=source,
                digest=digest,
                published_at=utc_now(),
                publisher=publisher,
                summary=summary,
            )
            payload = record.to_json()
            pipe.multi()
            pipe.hset(channels, name, record.sequence)
            pipe.set(current_key, payload)
            pipe.hset(history_key, str(record.sequence), payload)
            pipe.incr(self._key(GENERATION))
            pipe.publish(self._key(CHANGES_TOPIC), f"channel:{name}:{record.sequence}")
            return record

        # redis-py runs `transaction` again from a fresh read whenever EXEC finds the watched key
        # changed: without `expected_sequence` the publish then lands on the next sequence, with
        # it the re-read raises PreconditionFailedError.
        return self._transaction("publish", transaction, current_key, epoch_key, floors_key)

    def history(self, name: str) -> list[ChannelRecord]:
        raw = self._call("read history", lambda: self.client.hgetall(self._key(HISTORY, name)))
        return sorted((ChannelRecord.from_json(v) for v in raw.values()), key=lambda r: r.sequence)

    def history_entry(self, name: str, sequence: int) -> ChannelRecord | None:
        raw = self._call(
            "read history", lambda: self.client.hget(self._key(HISTORY, name), str(sequence))
        )
        return ChannelRecord.from_json(raw) if raw else None

    def revoke(self, jti: str, *, reason: str = "", by: str = "") -> bool:
        revoked, epoch_key = self._key(REVOKED), self._key(EPOCH)
        entry = revocation_entry(reason, by)

        def transaction(pipe: Pipeline) -> bool:
            if not pipe.exists(epoch_key):
                raise uninitialized("cannot record the revocation")
            if pipe.hexists(revoked, jti):
                pipe.multi()
                return False
            pipe.multi()
            pipe.hset(revoked, jti, entry)
            pipe.rpush(self._key(REVOCATIONS), jti)
            pipe.incr(self._key(GENERATION))
            pipe.publish(self._key(CHANGES_TOPIC), "revocation")
            return True

        return self._transaction("revoke", transaction, revoked, epoch_key)

    def is_revoked(self, jti: str) -> bool:
        return bool(
            self._call("read revocation", lambda: self.client.hexists(self._key(REVOKED), jti))
        )

    def revocations_since(self, offset: int) -> tuple[list[str], int]:
        check_offset(offset)
        key = self._key(REVOCATIONS)

        def read() -> list[Any]:
            pipe = self.client.pipeline()  # MULTI/EXEC: the ids and the length of one moment
            pipe.lrange(key, offset, -1)
            pipe.llen(key)
            return pipe.execute()

        raw, length = self._call("read revocations", read)
        return [_text(jti) for jti in raw], int(length)

    def generation(self) -> int:
        return int(
            self._call("read generation", lambda: self.client.get(self._key(GENERATION))) or 0
        )

    def add_counts(self, window: int, increments: Mapping[str, int]) -> dict[str, int]:
        key = self._key(RATELIMIT, str(window))

        def run() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for name, n in increments.items():
                pipe.hincrby(key, name, n)
            pipe.expire(key, 120)
            return pipe.execute()

        totals = self._call("count requests", run)
        return dict(zip(increments, (int(t) for t in totals[:-1]), strict=True))

    def add_publisher(
        self,
        name: str,
        token_hash: str,
        *,
        actions: tuple[str, ...] = ADMIN_ACTIONS,
        channels: tuple[str, ...] = EVERY_CHANNEL,
    ) -> PublisherRecord:
        publishers, tokens = self._key(PUBLISHERS), self._key(PUBLISHER_TOKENS)
        record = PublisherRecord(
            name=name,
            token_hash=token_hash,
            created_at=utc_now(),
            actions=tuple(actions),
            channels=tuple(channels),
        )

        def transaction(pipe: Pipeline) -> PublisherRecord:
            existing = pipe.hget(publishers, name)
            if existing and PublisherRecord.from_json(existing).active:
                raise ConflictError(f"publisher {name!r} exists; revoke it first to replace it")
            if pipe.hexists(tokens, token_hash):
                raise ConflictError("that token is in use already")
            pipe.multi()
            pipe.hset(publishers, name, record.to_json())
            pipe.hset(tokens, token_hash, name)
            return record

        return self._transaction("add publisher", transaction, publishers, tokens)

    def publishers(self) -> list[PublisherRecord]:
        raw = self._call("read publishers", lambda: self.client.hgetall(self._key(PUBLISHERS)))
        return sorted((PublisherRecord.from_json(v) for v in raw.values()), key=lambda p: p.name)

    def revoke_publisher(self, name: str) -> bool:
        publishers, tokens = self._key(PUBLISHERS), self._key(PUBLISHER_TOKENS)

        def transaction(pipe: Pipeline) -> bool:
            raw = pipe.hget(publishers, name)
            existing = PublisherRecord.from_json(raw) if raw else None
            pipe.multi()
            if existing is None or not existing.active:
                return False
            revoked = replace(existing, revoked_at=utc_now())
            pipe.hset(publishers, name, revoked.to_json())
            pipe.hdel(tokens, existing.token_hash)
            return True

        return self._transaction("revoke publisher", transaction, publishers)

    def publisher_for_hash(self, token_hash: str) -> PublisherRecord | None:
        name = self._call(
            "read publisher", lambda: self.client.hget(self._key(PUBLISHER_TOKENS), token_hash)
        )
        if name is None:
            return None
        # The index is only a way in: the publisher's own record must still hold this hash.
        raw = self._call(
            "read publisher", lambda: self.client.hget(self._key(PUBLISHERS), _text(name))
        )
        record = PublisherRecord.from_json(raw) if raw else None
        if record is None or not record.active:
            return None
        return record if hmac.compare_digest(record.token_hash, token_hash) else None

    # --- rollouts: reports, health, halts ---

    @property
    def _rollout_keys(self) -> RolloutKeys:
        return RolloutKeys(self.prefix)

    def record_outcomes(self, reports: Sequence[Report]) -> dict[tuple[str, str], OutcomeCounts]:
        by_release: dict[tuple[str, str], dict[str, str]] = {}
        for report in reports:  # in order: an instance's latest report wins
            by_release.setdefault((report.channel, report.release), {})[report.instance] = (
                report.outcome
            )
        applied = [r for r in reports if r.outcome == APPLIED]
        touched = {
            key: self._record_release_outcomes(*key, latest) for key, latest in by_release.items()
        }
        if applied:
            self._record_running(applied)
        return touched

    def _record_release_outcomes(
        self, channel: str, release: str, latest: dict[str, str]
    ) -> OutcomeCounts:
        """One release's new latest outcomes, with its counters moved to match, atomically."""
        keys = self._rollout_keys
        outcomes_key, counts_key = keys.outcomes(channel, release), keys.counts(channel)
        instances = list(latest)

        def transaction(pipe: Pipeline) -> OutcomeCounts:
            before = dict(zip(instances, pipe.hmget(outcomes_key, instances), strict=True))
            fields = _count_fields(release)
            # Counters of a release whose outcomes expired (no report for the retention time)
            # start again from zero, as its outcomes do.
            fresh = not pipe.exists(outcomes_key)
            counted = [_text(c) if c else "0" for c in pipe.hmget(counts_key, fields)]
            counts = {o: 0 if fresh else int(n) for o, n in zip(OUTCOMES, counted, strict=True)}
            moves: dict[str, int] = {}
            for instance, outcome in latest.items():
                old = _text(before[instance]) if before[instance] else None
                if old == outcome:
                    continue
                if old is not None:
                    moves[old] = moves.get(old, 0) - 1
                moves[outcome] = moves.get(outcome, 0) + 1
            pipe.multi()
            if fresh:
                pipe.hdel(counts_key, *fields)
            pipe.hset(outcomes_key, mapping=_fields(latest))
            for outcome, delta in moves.items():
                pipe.hincrby(counts_key, f"{release} {outcome}", delta)
                counts[outcome] = counts.get(outcome, 0) + delta
            pipe.expire(outcomes_key, ROLLOUT_RETENTION_SECONDS)
            pipe.expire(counts_key, ROLLOUT_RETENTION_SECONDS)
            return OutcomeCounts.of(counts)

        # Both keys watched: a concurrent flush makes this one read again, so the counts it
        # returns are the ones it left (a threshold is seen crossing exactly once).
        return self._transaction("record reports", transaction, outcomes_key, counts_key)

    def _record_running(self, applied: Sequence[Report]) -> None:
        keys = self._rollout_keys

        def run() -> None:
            pipe = self.client.pipeline(transaction=False)
            for report in applied:
                pipe.hset(keys.running(report.channel), report.instance, report.release)
                pipe.expire(keys.running(report.channel), ROLLOUT_RETENTION_SECONDS)
            pipe.execute()

        self._call("record running releases", run)

    def outcome_counts(self, channel: str) -> dict[str, OutcomeCounts]:
        raw = self._call(
            "read rollout health", lambda: self.client.hgetall(self._rollout_keys.counts(channel))
        )
        counts: dict[str, dict[str, int]] = {}
        for name, value in raw.items():
            release, _, outcome = _text(name).rpartition(" ")
            counts.setdefault(release, {})[outcome] = int(value)
        return {release: OutcomeCounts.of(c) for release, c in counts.items()}

    def halt_release(self, event: RolloutEvent) -> bool:
        keys = self._rollout_keys
        field = _halt_field(event.channel, event.release)

        def transaction(pipe: Pipeline) -> bool:
            if pipe.hexists(keys.halts, field):
                pipe.multi()
                return False
            pipe.multi()
            pipe.hset(keys.halts, field, event.to_json())
            self._log_rollout_event(pipe, event)
            return True

        return self._transaction("halt release", transaction, keys.halts)

    def resume_release(self, event: RolloutEvent) -> bool:
        keys = self._rollout_keys
        field = _halt_field(event.channel, event.release)

        def transaction(pipe: Pipeline) -> bool:
            if not pipe.hexists(keys.halts, field):
                pipe.multi()
                return False
            pipe.multi()
            pipe.hdel(keys.halts, field)
            pipe.delete(keys.outcomes(event.channel, event.release))
            pipe.hdel(keys.counts(event.channel), *_count_fields(event.release))
            self._log_rollout_event(pipe, event)
            return True

        outcomes = keys.outcomes(event.channel, event.release)
        counts = keys.counts(event.channel)
        return self._transaction("resume release", transaction, keys.halts, outcomes, counts)

    def _log_rollout_event(self, pipe: Pipeline, event: RolloutEvent) -> None:
        log = self._rollout_keys.log(event.channel)
        pipe.rpush(log, event.to_json())
        pipe.ltrim(log, -ROLLOUT_LOG_LENGTH, -1)
        pipe.incr(self._key(GENERATION))
        pipe.publish(self._key(CHANGES_TOPIC), f"{event.kind}:{event.channel}:{event.release}")

    def halts(self) -> dict[str, dict[str, RolloutEvent]]:
        raw = self._call("read halts", lambda: self.client.hvals(self._rollout_keys.halts))
        found: dict[str, dict[str, RolloutEvent]] = {}
        for value in raw:
            event = RolloutEvent.from_json(value)
            found.setdefault(event.channel, {})[event.release] = event
        return found

    def rollout_events(self, channel: str) -> list[RolloutEvent]:
        raw = self._call(
            "read rollout log",
            lambda: self.client.lrange(self._rollout_keys.log(channel), 0, -1),
        )
        return [RolloutEvent.from_json(v) for v in raw]

    def release_counts(self, channel: str) -> dict[str, int]:
        # Minimal version (rollouts branch) until the fleet branch's replaces it.
        raw = self._call(
            "read running releases",
            lambda: self.client.hvals(self._rollout_keys.running(channel)),
        )
        counts: dict[str, int] = {}
        for value in raw:
            counts[_text(value)] = counts.get(_text(value), 0) + 1
        return counts


class RolloutKeys:
    """The names of the rollouts' keys, all under the hash tag ``{rollouts}``:

    {rollouts}:outcomes:<channel>:<release>  hash instance -> latest outcome
    {rollouts}:counts:<channel>              hash "<release> <outcome>" -> instances
    {rollouts}:running:<channel>             hash instance -> release it last applied
    {rollouts}:halts                         hash "<channel> <release>" -> JSON halt
    {rollouts}:log:<channel>                 list JSON halts and resumes, oldest first
    """

    def __init__(self, prefix: str) -> None:
        self._base = prefix + "{rollouts}:"

    def outcomes(self, channel: str, release: str) -> str:
        return f"{self._base}outcomes:{channel}:{release}"

    def counts(self, channel: str) -> str:
        return f"{self._base}counts:{channel}"

    def running(self, channel: str) -> str:
        return f"{self._base}running:{channel}"

    @property
    def halts(self) -> str:
        return f"{self._base}halts"

    def log(self, channel: str) -> str:
        return f"{self._base}log:{channel}"


def _halt_field(channel: str, release: str) -> str:
    return f"{channel} {release}"


def _count_fields(release: str) -> list[str]:
    return [f"{release} {outcome}" for outcome in OUTCOMES]


def _read_floors(client: redis.Redis | Pipeline, key: str) -> dict[str, int]:
    return {_text(name): int(mark) for name, mark in client.hgetall(key).items()}


def _merged(*marks: Mapping[str, int]) -> dict[str, int]:
    """The highest mark of each name over all of `marks`."""
    merged: dict[str, int] = {}
    for each in marks:
        merged.update(_raised(merged, each))
    return merged


def _raised(floors: Mapping[str, int], marks: Mapping[str, int]) -> dict[str, int]:
    """The entries of `marks` that are above `floors` (what must be written to raise them)."""
    return {name: int(m) for name, m in marks.items() if int(m) > floors.get(name, 0)}


def _records(raw: Iterable[str | bytes]) -> list[ChannelRecord]:
    return sorted((ChannelRecord.from_json(v) for v in raw), key=lambda r: r.sequence)


def _fields(values: Mapping[str, int] | Mapping[str, str]) -> dict[FieldT, EncodableT]:
    """`values` as redis-py types `hset(mapping=...)` (a Mapping's key type admits no subtype)."""
    return dict(values.items())


def _text(value: str | bytes | None) -> str:
    """A reply as text: redis-py answers bytes here (no decode_responses); its types also allow
    str and, for CONFIG GET, None, which Redis never sends."""
    if isinstance(value, bytes):
        return value.decode()
    return value or ""
