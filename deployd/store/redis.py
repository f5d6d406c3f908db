"""The production store: Redis (redis-py), shared by every worker and replica.

Keys (all under `prefix`, default ``deployd:``):
  channels                hash  name -> current sequence
  channel:<name>          string JSON of the current ChannelRecord
  history:<name>          hash  sequence -> JSON of that ChannelRecord
  revoked                 hash  jti -> JSON {revokedAt, reason, by}
  revocations             list  jtis in the order they were revoked (read incrementally)
  generation              int   moves on every publish and revocation
  ratelimit:<window>      hash  key -> count in that minute (expires after two minutes)
A publish is one MULTI/EXEC transaction guarded by WATCH on the channel's sequence, so readers see
a complete old or complete new record and concurrent publishers never lose an update.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis

from deployd.errors import PreconditionFailedError, StoreUnavailableError
from deployd.store import ChannelRecord
from deployd.timestamps import utc_now

CHANNELS = "channels"
CHANNEL = "channel:"
HISTORY = "history:"
REVOKED = "revoked"
REVOCATIONS = "revocations"
GENERATION = "generation"
RATELIMIT = "ratelimit:"
# Workers may listen here to learn of a change at once; they also poll `generation`.
CHANGES_TOPIC = "changes"

T = TypeVar("T")


def masked_url(url: str) -> str:
    """`url` with any password replaced by ***, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class RedisStore:
    def __init__(self, client: redis.Redis, *, prefix: str = "deployd:", where: str = "") -> None:
        self.client = client
        self.prefix = prefix
        self.where = where or "redis"

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "deployd:") -> RedisStore:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=1.0,
            socket_timeout=2.0,
            health_check_interval=15,
            retry_on_timeout=False,
        )
        return cls(client, prefix=prefix, where=masked_url(url))

    def _key(self, *parts: str) -> str:
        return self.prefix + "".join(parts)

    def _call(self, what: str, action: Callable[[], T]) -> T:
        try:
            return action()
        except redis.RedisError as e:
            raise StoreUnavailableError(f"{what}: Redis at {self.where} failed: {e}") from e

    def ping(self) -> None:
        self._call("ping", self.client.ping)

    def sequences(self) -> dict[str, int]:
        raw = self._call("read sequences", lambda: self.client.hgetall(self._key(CHANNELS)))
        return {name.decode(): int(seq) for name, seq in raw.items()}

    def get_channel(self, name: str) -> ChannelRecord | None:
        raw = self._call("read channel", lambda: self.client.get(self._key(CHANNEL, name)))
        return ChannelRecord.from_dict(json.loads(raw)) if raw else None

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
            payload = json.dumps(record.to_dict(), separators=(",", ":"))
            pipe.multi()
            pipe.hset(channels, name, record.sequence)
            pipe.set(current_key, payload)
            pipe.hset(history_key, str(record.sequence), payload)
            pipe.incr(self._key(GENERATION))
            pipe.publish(self._key(CHANGES_TOPIC), f"channel:{name}:{record.sequence}")
            return record

        # WATCH the sequence map: a publisher that lost the race retries from a fresh read, or,
        # when it asked for a specific sequence, fails with 412 on the retry.
        return self._call(
            "publish",
            lambda: self.client.transaction(transaction, channels, value_from_callable=True),
        )

    def history(self, name: str) -> list[ChannelRecord]:
        raw = self._call("read history", lambda: self.client.hgetall(self._key(HISTORY, name)))
        records = [ChannelRecord.from_dict(json.loads(v)) for v in raw.values()]
        return sorted(records, key=lambda r: r.sequence)

    def history_entry(self, name: str, sequence: int) -> ChannelRecord | None:
        raw = self._call(
            "read history", lambda: self.client.hget(self._key(HISTORY, name), str(sequence))
        )
        return ChannelRecord.from_dict(json.loads(raw)) if raw else None

    def revoke(self, jti: str, *, reason: str = "", by: str = "") -> bool:
        entry = json.dumps({"revokedAt": utc_now(), "reason": reason, "by": by})

        def transaction(pipe: redis.client.Pipeline) -> bool:
            if pipe.hexists(self._key(REVOKED), jti):
                pipe.multi()
                return False
            pipe.multi()
            pipe.hset(self._key(REVOKED), jti, entry)
            pipe.rpush(self._key(REVOCATIONS), jti)
            pipe.incr(self._key(GENERATION))
            pipe.publish(self._key(CHANGES_TOPIC), "revocation")
            return True

        return self._call(
            "revoke",
            lambda: self.client.transaction(
                transaction, self._key(REVOKED), value_from_callable=True
            ),
        )

    def is_revoked(self, jti: str) -> bool:
        return bool(
            self._call("read revocation", lambda: self.client.hexists(self._key(REVOKED), jti))
        )

    def revocations_since(self, offset: int) -> tuple[list[str], int]:
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
