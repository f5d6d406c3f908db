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
  {customers}:records     hash  license subject -> JSON CustomerRecord
  {customers}:version     int   moves on every change of a customer record
  {events}:log            zset  event id -> JSON EventRecord (the newest DEPLOYD_EVENTS_MAX)
  {events}:last-id        int   the id of the last event appended
  {events}:lease          string who delivers webhooks now (expires), {events}:cursor the last
                          event id they handled, {events}:counts hash of delivery counters
and the pub/sub channel `changes`, told of every publish and revocation (after its EXEC). Rollouts
keep their keys under the hash tag ``{rollouts}`` (see `RolloutKeys`), the fleet under ``{fleet}``.

On a Redis Cluster the keys above without a hash tag of their own (channels ... floors) are named
with the tag ``{core}`` after the prefix (``deployd:{core}:channels``), so every transaction stays
in one slot; on one server and with Sentinel they keep the names above. Operations that span two
families (a halt moves `generation`, a backup reads customer records) take one step per family,
in an order that is safe (deployd/store/connect.py makes the clients).

A publish is one MULTI/EXEC transaction guarded by WATCH on the channel's current record (and on
the epoch and floors), so readers see a complete old or complete new record and concurrent
publishers never lose an update. Why the epoch and floors exist: deployd/store/__init__.py.
Every redis-py error becomes StoreUnavailableError; messages name the server (host, port and
database), never the URL, which may carry a password.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from typing import Any, TypeVar

import redis
from redis.client import Pipeline
from redis.sentinel import MasterNotFoundError
from redis.typing import EncodableT, FieldT

from deployd.errors import (
    ConflictError,
    PreconditionFailedError,
    StoreUnavailableError,
)
from deployd.fleet import redis_scripts as fleet_scripts
from deployd.fleet.model import (
    CheckIn,
    FeedRead,
    FlushOutcome,
    InstanceChange,
    InstanceRecord,
    Snapshot,
)
from deployd.fleet.paging import MAX_SCANNED, Cursor, FleetPage, FleetQuery
from deployd.metrics.hooks import store_operation
from deployd.protocol import utc_now
from deployd.rollouts.records import OUTCOMES, OutcomeCounts, Report, RolloutEvent
from deployd.store import (
    ADMIN_ACTIONS,
    EVERY_CHANNEL,
    MAX_CUSTOMERS,
    ROLLOUT_LOG_LENGTH,
    ROLLOUT_RETENTION_SECONDS,
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
from deployd.store.connect import RedisClient, parse_redis_url, redis_client

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
CUSTOMERS_TAG = "{customers}:"  # a Redis Cluster hash tag: every customer key in one slot
CUSTOMER_RECORDS = "records"
CUSTOMERS_VERSION = "version"
# Workers may listen here to learn of a change at once; they also poll `generation`.
CHANGES_TOPIC = "changes"
# On a Redis Cluster the core keys (every key above without a tag of its own) are under this
# hash tag, so each transaction on them stays in one slot; on one server (or Sentinel) they
# keep their untagged names.
CORE_TAG = "{core}:"
# Written just before WAIT, so WAIT covers every write this store made before it (see _confirm).
REPLICATED = "replicated"
# With Sentinel a change is acknowledged only once a replica has it: WAIT for this many
# replicas, at most this long.
WAIT_REPLICAS = 1
WAIT_MILLISECONDS = 1000

# How many channels' release counts one pipeline reads (a store of 10,000 channels: 10 of them).
COUNTS_PER_PIPELINE = 1000

T = TypeVar("T")


def _server_of(client: RedisClient) -> str:
    """host:port/db (or the socket path) of `client`, for messages: never credentials."""
    if isinstance(client, redis.RedisCluster):
        return "Redis Cluster"
    kwargs = client.connection_pool.connection_kwargs
    if "path" in kwargs:
        return f"unix://{kwargs['path']}"
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


class RedisStore:
    """The Store on one Redis database; `prefix` lets several deployments share a database.

    `client` is a client of one server (or of the primary Sentinel names), or of a Redis Cluster,
    or a function that makes one when first needed (a cluster client connects when made).
    `replicas`: with Sentinel, how many replicas must confirm a change before it is acknowledged.
    """

    def __init__(
        self,
        client: RedisClient | Callable[[], RedisClient],
        *,
        prefix: str = "deployd:",
        server: str | None = None,
        cluster: bool | None = None,
        replicas: int = 0,
    ) -> None:
        self._client: RedisClient | None = None
        self._make_client: Callable[[], RedisClient] | None = None
        if callable(client):
            self._make_client = client
        else:
            self._client = client
        self._client_lock = threading.Lock()
        self.prefix = prefix
        self.cluster = isinstance(client, redis.RedisCluster) if cluster is None else cluster
        self.replicas = replicas
        self._core = prefix + (CORE_TAG if self.cluster else "")
        if server is None:
            server = "Redis Cluster" if callable(client) else _server_of(client)
        self.server = server

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "deployd:", timeout: float | None = None
    ) -> RedisStore:
        """A store on `url` (deployd.store.connect: one server, Sentinel or Cluster) that fails
        fast when Redis is away, and connects to nothing until first used.

        Connecting gives up after 1 s and a reply is awaited 2 s, then the call raises
        StoreUnavailableError: never retried here, since callers already decide what to do
        without the store (serve from cache, fail the command) and a retried timeout only doubles
        the wait. A connection that died while idle in the pool is replaced when next used.
        `timeout` replaces both limits (a worker's background refresh uses a short one).
        A bad or unsupported URL is a ConfigError that does not repeat it.
        """
        target = parse_redis_url(url)
        if target.kind == "cluster":
            return cls(
                lambda: redis_client(target, timeout=timeout),
                prefix=prefix,
                server=target.description,
                cluster=True,
            )
        client = redis_client(target, timeout=timeout)
        server = target.description or _server_of(client)
        replicas = WAIT_REPLICAS if target.kind == "sentinel" else 0
        return cls(client, prefix=prefix, server=server, cluster=False, replicas=replicas)

    @property
    def client(self) -> RedisClient:
        """The Redis client, made on first use when it was given as a function (it raises, and
        `_call` turns that into StoreUnavailableError, while the cluster cannot be reached)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    assert self._make_client is not None
                    self._client = self._make_client()
        return self._client

    def close(self) -> None:
        """Close the client's connections."""
        if self._client is not None:
            self._client.close()

    def _key(self, *parts: str) -> str:
        """The name of a core key (channels, revocations, publishers, ...)."""
        return self._core + "".join(parts)

    def _call(self, what: str, action: Callable[[], T]) -> T:
        """Run `action`; count and time it under `what` (deployd.metrics: a fixed name)."""
        started = time.perf_counter()
        failed = True
        try:
            result = action()
            failed = False
            return result
        except MasterNotFoundError as e:
            # Sentinel's message lists every sentinel client's settings: say what it means.
            message = f"{what}: no sentinel names a reachable primary for {self.server}"
            raise StoreUnavailableError(message) from e
        except (redis.RedisError, redis.exceptions.RedisClusterException) as e:
            raise StoreUnavailableError(f"{what}: Redis at {self.server} failed: {e}") from e
        finally:
            store_operation(what, time.perf_counter() - started, failed=failed)

    def _transaction(
        self,
        what: str,
        body: Callable[[Pipeline], T],
        *watched: str,
        announce: Callable[[T], str | None] | None = None,
        durable: bool = True,
    ) -> T:
        """Run `body` in redis-py's WATCH/MULTI/EXEC loop (again whenever EXEC finds a watched key
        changed) and return what its last run, the one that committed, returned.

        Then, when `durable`, wait for the replicas a change needs (`_confirm`), and tell the
        `changes` topic what `announce` makes of the result (after EXEC: a cluster takes no
        PUBLISH inside a transaction, and a listener must find the change already there)."""
        returned: list[T] = []

        def run(pipe: Pipeline) -> None:
            returned.append(body(pipe))

        self._call(what, lambda: self.client.transaction(run, *watched))
        result = returned[-1]
        if durable:
            self._confirm(what)
        message = announce(result) if announce is not None else None
        if message is not None:
            self._call(what, lambda: self.client.publish(self._key(CHANGES_TOPIC), message))
        return result

    def _confirm(self, what: str) -> None:
        """With `replicas` set (Sentinel), raise StoreUnavailableError unless that many replicas
        have every write made so far: WAIT counts the writes of its own connection, and
        replication keeps one order, so one more write followed by WAIT on one connection
        covers the transaction that just committed on another."""
        if not self.replicas:
            return

        def wait() -> int:
            pipe = self.client.pipeline(transaction=False)
            pipe.incr(self._key(REPLICATED))
            pipe.wait(self.replicas, WAIT_MILLISECONDS)
            return int(pipe.execute()[-1])

        confirmed = self._call(what, wait)
        if confirmed < self.replicas:
            raise StoreUnavailableError(
                f"{what}: Redis at {self.server}: no replica confirmed the change within"
                f" {WAIT_MILLISECONDS} ms, so it is not acknowledged (it may still be applied)"
            )

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
            return epoch

        return self._transaction(
            "initialise", transaction, epoch_key, floors_key, announce=lambda _: "epoch"
        )

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
            # redis-py read again, so the backup is one consistent moment of the core keys.
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

        contents = self._transaction("export", transaction, *watched, durable=False)
        # Customer records are their own family (their own hash tag, so their own slot on a
        # cluster): read as one moment of theirs.
        return replace(contents, customers=self.customers())

    def restore(self, contents: StoreContents, *, force: bool = False) -> str:
        """Customer records first, then the core keys with the new epoch last, each family in
        one transaction of its own (one slot each on a cluster)."""
        owned = [
            self._key(k) for k in (CHANNELS, REVOKED, REVOCATIONS, PUBLISHERS, PUBLISHER_TOKENS)
        ]
        watched = [*owned, self._key(EPOCH), self._key(FLOORS), self._key(GENERATION)]
        epoch = new_epoch()

        def core_is_empty(client: RedisClient | Pipeline) -> bool:
            return not any(client.exists(k) for k in owned)

        if not force and not self._call("read the store", lambda: core_is_empty(self.client)):
            raise _not_empty()
        self._restore_customers(contents.customers, force=force)

        def transaction(pipe: Pipeline) -> str:
            before = {_text(n): int(s) for n, s in pipe.hgetall(self._key(CHANNELS)).items()}
            if not force and not core_is_empty(pipe):
                raise _not_empty()
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
            return epoch

        return self._transaction("restore", transaction, *watched, announce=lambda _: "epoch")

    def _restore_customers(self, customers: list[CustomerRecord], *, force: bool) -> None:
        records = self._customer_key(CUSTOMER_RECORDS)
        version_key = self._customer_key(CUSTOMERS_VERSION)

        def transaction(pipe: Pipeline) -> None:
            if not force and pipe.exists(records):
                raise _not_empty()
            version = restored_customers_version(int(pipe.get(version_key) or 0), customers)
            pipe.multi()
            pipe.delete(records)
            if customers:
                written = {c.subject: c.to_json() for c in customers}
                pipe.hset(records, mapping=_fields(written))
            pipe.set(version_key, version)

        self._transaction("restore customers", transaction, records, version_key)

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
        """How the server (on a cluster: every primary) keeps its data; a cluster is described
        by its least persisted primary."""
        try:
            configs = [
                {
                    _text(k): _text(v)
                    for name in ("appendonly", "appendfsync", "save")
                    for k, v in config_get(name).items()
                }
                for config_get in self._config_readers()
            ]
        except redis.ResponseError as e:
            # Managed Redis often disables CONFIG: say so rather than guess.
            return Persistence(False, False, f"could not be checked (CONFIG GET refused: {e})")
        except (redis.RedisError, redis.exceptions.RedisClusterException) as e:
            message = f"read persistence: Redis at {self.server} failed: {e}"
            raise StoreUnavailableError(message) from e
        described = [_persistence_of(config) for config in configs]
        return min(described, key=lambda p: p.persisted)

    def _config_readers(self) -> list[Callable[[str], Mapping[Any, Any]]]:
        """CONFIG GET of the server, or of each primary of a cluster."""
        client = self.client
        if isinstance(client, redis.RedisCluster):
            return [
                node.redis_connection.config_get
                for node in client.get_primaries()  # type: ignore[no-untyped-call]
                if node.redis_connection is not None
            ]
        return [client.config_get]

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
            return record

        # redis-py runs `transaction` again from a fresh read whenever EXEC finds the watched key
        # changed: without `expected_sequence` the publish then lands on the next sequence, with
        # it the re-read raises PreconditionFailedError.
        return self._transaction(
            "publish",
            transaction,
            current_key,
            epoch_key,
            floors_key,
            announce=lambda record: f"channel:{name}:{record.sequence}",
        )

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
            return True

        return self._transaction(
            "revoke",
            transaction,
            revoked,
            epoch_key,
            announce=lambda done: "revocation" if done else None,
        )

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
        key = self.prefix + RATELIMIT + str(window)  # one key a call: any slot will do

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

    # --- customers: customer records ---

    def _customer_key(self, name: str) -> str:
        """The keys of customer records, under one hash tag (one Redis Cluster slot)."""
        return self.prefix + CUSTOMERS_TAG + name

    def _read_customers(self, client: RedisClient | Pipeline) -> list[CustomerRecord]:
        raw = client.hvals(self._customer_key(CUSTOMER_RECORDS))
        return sorted((CustomerRecord.from_json(v) for v in raw), key=lambda c: c.subject)

    def customer(self, subject: str) -> CustomerRecord | None:
        raw = self._call(
            "read customer",
            lambda: self.client.hget(self._customer_key(CUSTOMER_RECORDS), subject),
        )
        return CustomerRecord.from_json(raw) if raw else None

    def customers(self) -> list[CustomerRecord]:
        return self._call("read customers", lambda: self._read_customers(self.client))

    def customers_version(self) -> int:
        raw = self._call(
            "read customers version",
            lambda: self.client.get(self._customer_key(CUSTOMERS_VERSION)),
        )
        return int(raw or 0)

    def update_customer(
        self,
        subject: str,
        change: Callable[[CustomerRecord | None], CustomerRecord | None],
    ) -> CustomerRecord | None:
        records = self._customer_key(CUSTOMER_RECORDS)
        version_key = self._customer_key(CUSTOMERS_VERSION)
        if not self._call("read epoch", lambda: self.client.exists(self._key(EPOCH))):
            raise uninitialized(f"cannot change customer {subject!r}")

        def transaction(pipe: Pipeline) -> CustomerRecord | None:
            raw = pipe.hget(records, subject)
            current = CustomerRecord.from_json(raw) if raw else None
            wanted = change(current)
            if wanted == current:
                pipe.multi()
                return current
            if wanted is None:
                pipe.multi()
                pipe.hdel(records, subject)
                pipe.incr(version_key)
                return None
            if current is None and pipe.hlen(records) >= MAX_CUSTOMERS:
                raise too_many_customers()
            version = int(pipe.get(version_key) or 0) + 1
            written = replace(wanted, subject=subject, version=version)
            pipe.multi()
            pipe.hset(records, subject, written.to_json())
            pipe.set(version_key, version)
            return written

        return self._transaction("change customer", transaction, records, version_key)

    # --- events: the event log and webhook delivery ---

    def _events_key(self, name: str) -> str:
        """The key of one part of the event log; all under one hash tag, so every multi-key
        step of it stays on one Redis Cluster slot."""
        return self.prefix + "{events}:" + name

    def append_event(self, event: EventRecord, *, keep: int) -> EventRecord:
        log, last_id = self._events_key("log"), self._events_key("last-id")

        def transaction(pipe: Pipeline) -> EventRecord:
            # The id is taken and the event written in one EXEC (WATCH on the counter), so the
            # log never holds a higher id before a lower one: a reader after id N misses nothing.
            stored = replace(event, id=int(pipe.get(last_id) or 0) + 1)
            pipe.multi()
            pipe.set(last_id, stored.id)
            pipe.zadd(log, {stored.to_json(): stored.id})
            pipe.zremrangebyrank(log, 0, -keep - 1)
            return stored

        return self._transaction("record event", transaction, last_id)

    def read_events(
        self, *, after: int = 0, before: int | None = None, limit: int, oldest_first: bool
    ) -> list[EventRecord]:
        log = self._events_key("log")
        low, high = f"({after}", "+inf" if before is None else f"({before}"

        def read() -> list[Any]:
            if oldest_first:
                return self.client.zrangebyscore(log, low, high, start=0, num=limit)
            return self.client.zrevrangebyscore(log, high, low, start=0, num=limit)

        return [EventRecord.from_json(raw) for raw in self._call("read events", read)]

    def take_webhook_lease(self, owner: str, *, seconds: float) -> bool:
        lease = self._events_key("lease")

        def transaction(pipe: Pipeline) -> bool:
            holder = pipe.get(lease)
            pipe.multi()
            if holder is not None and _text(holder) != owner:
                return False
            pipe.set(lease, owner, px=max(1, int(seconds * 1000)))
            return True

        return self._transaction("take the webhook lease", transaction, lease, durable=False)

    def webhook_state(self) -> WebhookState:
        def read() -> list[Any]:
            pipe = self.client.pipeline()
            pipe.get(self._events_key("cursor"))
            pipe.hgetall(self._events_key("counts"))
            return pipe.execute()

        cursor, counts = self._call("read webhook state", read)
        return WebhookState(int(cursor or 0), {_text(name): int(n) for name, n in counts.items()})

    def advance_webhook_cursor(self, owner: str, cursor: int, counts: Mapping[str, int]) -> bool:
        lease, cursor_key = self._events_key("lease"), self._events_key("cursor")
        counts_key = self._events_key("counts")

        def transaction(pipe: Pipeline) -> bool:
            holder = pipe.get(lease)
            current = int(pipe.get(cursor_key) or 0)
            pipe.multi()
            if holder is None or _text(holder) != owner:
                return False
            pipe.set(cursor_key, max(current, cursor))
            for name, n in counts.items():
                pipe.hincrby(counts_key, name, n)
            return True

        return self._transaction(
            "advance the webhook cursor", transaction, lease, cursor_key, durable=False
        )

    # --- fleet: instances ---
    # Keys, all under one hash tag (deployd.fleet.redis_scripts), named by `_fleet_key`:
    #   {fleet}:instances           hash  instance key -> JSON InstanceRecord
    #   {fleet}:seen                zset  instance key -> last seen (every instance)
    #   {fleet}:channel:<name>      zset  the same, per channel
    #   {fleet}:customer:<sub>      zset  the same, per license subject
    #   {fleet}:counts:<name>       hash  release -> instances running it (reported, else served)
    #   {fleet}:release:<name>:<v>  zset  those instances -> last seen
    #   {fleet}:channels            set   channels that ever had an instance
    #   {fleet}:feed                stream the change feed workers keep their views current from
    #   {fleet}:adoption:<name>     hash  hour number -> JSON {release: instances} at that hour
    #   {fleet}:adoption-hour:<h>   string the once-per-hour lock of the adoption snapshot

    def _fleet_key(self, *parts: str) -> str:
        return self.prefix + "{fleet}:" + "".join(parts)

    def _fleet_script(self, what: str, source: str, args: Sequence[Any]) -> Any:
        def run() -> Any:
            script = self._fleet_scripts.get(source)
            if script is None:  # made with the client, which a cluster makes on first use
                script = self._fleet_scripts[source] = self.client.register_script(source)
            return script(keys=[self._fleet_key()], args=list(args))

        return self._call(what, run)

    @property
    def _fleet_scripts(self) -> dict[str, Any]:
        scripts: dict[str, Any] | None = getattr(self, "_fleet_script_cache", None)
        if scripts is None:
            scripts = {}
            self._fleet_script_cache: dict[str, Any] = scripts
        return scripts

    def record_checkins(self, checkins: Sequence[CheckIn], *, feed_cap: int) -> FlushOutcome:
        args: list[Any] = [feed_cap]
        for check_in in checkins:
            fields_ = {f.name: getattr(check_in, f.name) for f in dataclass_fields(check_in)}
            args.append(json.dumps(fields_))
            args.append("" if check_in.max_instances is None else check_in.max_instances)
        new, refused = self._fleet_script("record check-ins", fleet_scripts.CHECK_IN, args)
        return FlushOutcome([_text(k) for k in new], [_text(k) for k in refused])

    def record_reported(self, reports: Mapping[str, str], *, feed_cap: int) -> int:
        args: list[Any] = [feed_cap]
        for key, release in reports.items():
            args += [key, release]
        return int(self._fleet_script("record reported releases", fleet_scripts.REPORTED, args))

    def instance(self, instance_id: str) -> InstanceRecord | None:
        raw = self._call(
            "read instance", lambda: self.client.hget(self._fleet_key("instances"), instance_id)
        )
        return InstanceRecord.from_json(raw) if raw else None

    def release_counts(self, channel: str) -> dict[str, int]:
        raw = self._call(
            "read release counts",
            lambda: self.client.hgetall(self._fleet_key("counts:", channel)),
        )
        return {_text(release): int(n) for release, n in raw.items()}

    def release_counts_of(self, channels: Sequence[str]) -> dict[str, dict[str, int]]:
        names = list(channels)

        def read() -> list[Any]:
            replies: list[Any] = []
            for start in range(0, len(names), COUNTS_PER_PIPELINE):
                pipe = self.client.pipeline(transaction=False)
                for name in names[start : start + COUNTS_PER_PIPELINE]:
                    pipe.hgetall(self._fleet_key("counts:", name))
                replies += pipe.execute()
            return replies

        replies = self._call("read release counts", read)
        return {
            name: {_text(release): int(n) for release, n in raw.items()}
            for name, raw in zip(names, replies, strict=True)
            if raw
        }

    def fleet_page(self, query: FleetQuery) -> FleetPage:
        if query.customer is not None:
            index = self._fleet_key("customer:", query.customer)
        elif query.channel is not None and query.release is not None:
            index = self._fleet_key("release:", query.channel, ":", query.release)
        elif query.channel is not None:
            index = self._fleet_key("channel:", query.channel)
        else:
            index = self._fleet_key("seen")
        low = "-inf" if query.seen_since is None else repr(query.seen_since)
        top = query.top
        high = "+inf" if top == float("inf") else repr(top)
        cursor = query.cursor or Cursor(top, 0)
        found: list[InstanceRecord] = []
        # Filters the index does not apply itself make a page look at more entries.
        filtered = (
            query.keep is not None
            or (query.release is not None and not (query.channel and query.customer is None))
            or (query.customer is not None and query.channel is not None)
        )
        offset, scanned = query.skip, 0
        chunk = max(query.limit, 500) if filtered else query.limit + 1
        while scanned < MAX_SCANNED:
            entries = self._fleet_index_chunk(index, high, low, offset, chunk)
            if not entries:
                return FleetPage(found, None)
            for (_, score), record in entries:
                if len(found) == query.limit:
                    return FleetPage(found, cursor.encode())
                scanned += 1
                cursor = cursor.after([score])
                if record is not None and query.matches(record):
                    found.append(record)
            offset += len(entries)
        return FleetPage(found, cursor.encode())

    def _fleet_index_chunk(
        self, index: str, high: str, low: str, offset: int, count: int
    ) -> list[tuple[tuple[str, float], InstanceRecord | None]]:
        """Up to `count` entries of `index` from `offset` (newest first) with their records."""

        def read() -> list[Any]:
            entries: list[tuple[bytes, float]] = self.client.zrevrangebyscore(  # type: ignore[assignment]
                index, high, low, start=offset, num=count, withscores=True
            )
            if not entries:
                return []
            keys = [_text(key) for key, _ in entries]
            raws = self.client.hmget(self._fleet_key("instances"), keys)
            return [
                ((key, float(score)), InstanceRecord.from_json(raw) if raw else None)
                for key, (_, score), raw in zip(keys, entries, raws, strict=True)
            ]

        return self._call("read fleet", read)

    def instance_changes(self, after: str, limit: int) -> FeedRead:
        feed = self._fleet_key("feed")

        def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            pipe.xrange(feed, "-", "+", count=1)
            pipe.xrange(feed, "(" + (after or "0-0"), "+", count=limit)
            return pipe.execute()

        oldest, entries = self._call("read instance changes", read)
        # Entries after `after` were trimmed when the oldest left is newer. A reader at 0-0 (the
        # feed was empty when it loaded) is the exception: it would miss entries only if more
        # than the feed's cap were written between two of its reads.
        after = after or "0-0"
        complete = (
            not oldest or after == "0-0" or _stream_id(_text(oldest[0][0])) <= _stream_id(after)
        )
        changes = [_change(fields_) for _, fields_ in entries]
        position = _text(entries[-1][0]) if entries else after
        return FeedRead(changes, position, complete=complete)

    def instance_snapshot(self, cursor: str, count: int) -> Snapshot:
        position = after = ""
        if not cursor:
            last = self._call(
                "read instance changes",
                lambda: self.client.xrevrange(self._fleet_key("feed"), "+", "-", count=1),
            )
            position = _text(last[0][0]) if last else "0-0"
        after = cursor or "0"
        next_cursor, raw = self._call(
            "read instances",
            lambda: self.client.hscan(self._fleet_key("instances"), int(after), count=count),
        )
        values = raw.values() if isinstance(raw, dict) else raw[1::2]
        changes = [InstanceRecord.from_json(v).change() for v in values]
        return Snapshot(changes, None if int(next_cursor) == 0 else str(next_cursor), position)

    def expire_instances(self, before: float, limit: int, *, feed_cap: int) -> int:
        args = [feed_cap, repr(before), limit]
        return int(self._fleet_script("expire instances", fleet_scripts.EXPIRE, args))

    def snapshot_adoption(self, hour: int, *, keep_hours: int) -> bool:
        args = [hour, keep_hours]
        return bool(self._fleet_script("snapshot adoption", fleet_scripts.SNAPSHOT, args))

    def adoption(self, channel: str, since_hour: int) -> list[tuple[int, dict[str, int]]]:
        raw = self._call(
            "read adoption", lambda: self.client.hgetall(self._fleet_key("adoption:", channel))
        )
        points = ((int(hour), json.loads(counts)) for hour, counts in raw.items())
        return sorted((h, c) for h, c in points if h >= since_hour)

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
        touched = {
            key: self._record_release_outcomes(*key, latest) for key, latest in by_release.items()
        }
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
        return self._transaction(
            "record reports", transaction, outcomes_key, counts_key, durable=False
        )

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

        return self._rollout_changed(
            event, self._transaction("halt release", transaction, keys.halts)
        )

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
        resumed = self._transaction("resume release", transaction, keys.halts, outcomes, counts)
        return self._rollout_changed(event, resumed)

    def _log_rollout_event(self, pipe: Pipeline, event: RolloutEvent) -> None:
        log = self._rollout_keys.log(event.channel)
        pipe.rpush(log, event.to_json())
        pipe.ltrim(log, -ROLLOUT_LOG_LENGTH, -1)

    def _rollout_changed(self, event: RolloutEvent, changed: bool) -> bool:
        """After a halt or resume committed, move the generation so workers read the halts again.

        A step of its own: the rollouts' keys and `generation` are in different slots on a
        cluster. In this order a worker that sees the generation move finds the halt already
        there; if this step fails (StoreUnavailableError), the halt is kept and workers pick it
        up at the next change."""
        if changed:
            what = f"{event.kind} {event.channel} {event.release}"
            self._call(what, lambda: self.client.incr(self._key(GENERATION)))
            message = f"{event.kind}:{event.channel}:{event.release}"
            self._call(what, lambda: self.client.publish(self._key(CHANGES_TOPIC), message))
        return changed

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


class RolloutKeys:
    """The names of the rollouts' keys, all under the hash tag ``{rollouts}``:

    {rollouts}:outcomes:<channel>:<release>  hash instance -> latest outcome
    {rollouts}:counts:<channel>              hash "<release> <outcome>" -> instances
    {rollouts}:halts                         hash "<channel> <release>" -> JSON halt
    {rollouts}:log:<channel>                 list JSON halts and resumes, oldest first
    """

    def __init__(self, prefix: str) -> None:
        self._base = prefix + "{rollouts}:"

    def outcomes(self, channel: str, release: str) -> str:
        return f"{self._base}outcomes:{channel}:{release}"

    def counts(self, channel: str) -> str:
        return f"{self._base}counts:{channel}"

    @property
    def halts(self) -> str:
        return f"{self._base}halts"

    def log(self, channel: str) -> str:
        return f"{self._base}log:{channel}"


def _persistence_of(config: Mapping[str, str]) -> Persistence:
    aof = config.get("appendonly") == "yes"
    save = config.get("save", "")
    described = f"appendonly={config.get('appendonly')}"
    if aof:
        described += f" appendfsync={config.get('appendfsync')}"
    described += f"; save={save!r}"
    return Persistence(True, aof or bool(save.strip()), described)


def _not_empty() -> ConflictError:
    return ConflictError("the store is not empty; restore over it only with --force")


def _halt_field(channel: str, release: str) -> str:
    return f"{channel} {release}"


def _count_fields(release: str) -> list[str]:
    return [f"{release} {outcome}" for outcome in OUTCOMES]


def _read_floors(client: RedisClient | Pipeline, key: str) -> dict[str, int]:
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


def _stream_id(text: str) -> tuple[int, int]:
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


def _change(fields_: Mapping[bytes | str, bytes | str]) -> InstanceChange:
    """A change-feed entry, as the fleet scripts write it."""
    get = {_text(k): _text(v) for k, v in fields_.items()}
    return InstanceChange(
        key=get["k"],
        subject=get["s"],
        served=get["v"] or None,
        reported=get["r"] or None,
        last_seen=float(get["t"]),
        removed=get["x"] == "1",
    )


def _text(value: str | bytes | None) -> str:
    """A reply as text: redis-py answers bytes here (no decode_responses); its types also allow
    str and, for CONFIG GET, None, which Redis never sends."""
    if isinstance(value, bytes):
        return value.decode()
    return value or ""
