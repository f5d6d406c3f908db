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
and the pub/sub channel `changes`, told of every publish and revocation.

A publish is one MULTI/EXEC transaction guarded by WATCH on the channel's current record, so
readers see a complete old or complete new record and concurrent publishers never lose an update.
Every redis-py error becomes StoreUnavailableError; messages name the server (host, port and
database), never the URL, which may carry a password.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from deployd.errors import (
    ConfigError,
    ConflictError,
    PreconditionFailedError,
    StoreUnavailableError,
)
from deployd.store import ChannelRecord, PublisherRecord, check_offset, revocation_entry
from deployd.timestamps import utc_now

CHANNELS = "channels"
CHANNEL = "channel:"
HISTORY = "history:"
REVOKED = "revoked"
REVOCATIONS = "revocations"
GENERATION = "generation"
RATELIMIT = "ratelimit:"
PUBLISHERS = "publishers"
PUBLISHER_TOKENS = "publisher-tokens"
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

    def ping(self) -> None:
        self._call("ping", self.client.ping)

    def sequences(self) -> dict[str, int]:
        raw = self._call("read sequences", lambda: self.client.hgetall(self._key(CHANNELS)))
        return {name.decode(): int(seq) for name, seq in raw.items()}

    def get_channel(self, name: str) -> ChannelRecord | None:
        raw = self._call("read channel", lambda: self.client.get(self._key(CHANNEL, name)))
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
        channels, current_key = self._key(CHANNELS), self._key(CHANNEL, name)
        history_key = self._key(HISTORY, name)

        def transaction(pipe: redis.client.Pipeline) -> ChannelRecord:
            # Every publish of this channel rewrites `current_key` in the same EXEC as the
            # sequence, so watching that one key is enough and other channels never interfere.
            current = int(pipe.hget(channels, name) or 0)
            if expected_sequence is not None and expected_sequence != current:
                raise PreconditionFailedError(
                    f"channel {name!r} is at sequence {current}, not {expected_sequence}"
                )
            record = ChannelRecord(
                name=name,
                sequence=current + 1,
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
        return self._call(
            "publish",
            lambda: self.client.transaction(transaction, current_key, value_from_callable=True),
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
        revoked = self._key(REVOKED)
        entry = revocation_entry(reason, by)

        def transaction(pipe: redis.client.Pipeline) -> bool:
            if pipe.hexists(revoked, jti):
                pipe.multi()
                return False
            pipe.multi()
            pipe.hset(revoked, jti, entry)
            pipe.rpush(self._key(REVOCATIONS), jti)
            pipe.incr(self._key(GENERATION))
            pipe.publish(self._key(CHANGES_TOPIC), "revocation")
            return True

        return self._call(
            "revoke",
            lambda: self.client.transaction(transaction, revoked, value_from_callable=True),
        )

    def is_revoked(self, jti: str) -> bool:
        return bool(
            self._call("read revocation", lambda: self.client.hexists(self._key(REVOKED), jti))
        )

    def revocations_since(self, offset: int) -> tuple[list[str], int]:
        check_offset(offset)
        raw = self._call(
            "read revocations", lambda: self.client.lrange(self._key(REVOCATIONS), offset, -1)
        )
        return [jti.decode() for jti in raw], offset + len(raw)

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

    def add_publisher(self, name: str, token_hash: str) -> PublisherRecord:
        publishers, tokens = self._key(PUBLISHERS), self._key(PUBLISHER_TOKENS)
        record = PublisherRecord(name=name, token_hash=token_hash, created_at=utc_now())

        def transaction(pipe: redis.client.Pipeline) -> PublisherRecord:
            existing = pipe.hget(publishers, name)
            if existing and PublisherRecord.from_json(existing).active:
                raise ConflictError(f"publisher {name!r} exists; revoke it first to replace it")
            if pipe.hexists(tokens, token_hash):
                raise ConflictError("that token is in use already")
            pipe.multi()
            pipe.hset(publishers, name, record.to_json())
            pipe.hset(tokens, token_hash, name)
            return record

        return self._call(
            "add publisher",
            lambda: self.client.transaction(
                transaction, publishers, tokens, value_from_callable=True
            ),
        )

    def publishers(self) -> list[PublisherRecord]:
        raw = self._call("read publishers", lambda: self.client.hgetall(self._key(PUBLISHERS)))
        return sorted((PublisherRecord.from_json(v) for v in raw.values()), key=lambda p: p.name)

    def revoke_publisher(self, name: str) -> bool:
        publishers, tokens = self._key(PUBLISHERS), self._key(PUBLISHER_TOKENS)

        def transaction(pipe: redis.client.Pipeline) -> bool:
            raw = pipe.hget(publishers, name)
            existing = PublisherRecord.from_json(raw) if raw else None
            pipe.multi()
            if existing is None or not existing.active:
                return False
            revoked = PublisherRecord(
                name=name,
                token_hash=existing.token_hash,
                created_at=existing.created_at,
                revoked_at=utc_now(),
            )
            pipe.hset(publishers, name, revoked.to_json())
            pipe.hdel(tokens, existing.token_hash)
            return True

        return self._call(
            "revoke publisher",
            lambda: self.client.transaction(transaction, publishers, value_from_callable=True),
        )

    def publisher_for_hash(self, token_hash: str) -> str | None:
        name = self._call(
            "read publisher", lambda: self.client.hget(self._key(PUBLISHER_TOKENS), token_hash)
        )
        if name is None:
            return None
        # The index is only a way in: the publisher's own record must still hold this hash.
        raw = self._call(
            "read publisher", lambda: self.client.hget(self._key(PUBLISHERS), name.decode())
        )
        record = PublisherRecord.from_json(raw) if raw else None
        if record is None or not record.active:
            return None
        return record.name if hmac.compare_digest(record.token_hash, token_hash) else None
