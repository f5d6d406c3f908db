"""The one place a Redis client is made from a URL (`REDIS_URL`, `--redis-url`).

Three kinds of deployment, one URL form each:

  redis://[:password@]host:port[/db]     one Redis server (also rediss:// for TLS,
  unix://[:password@]/path/to.sock[?db=N] and unix:// for a socket)
  redis+sentinel://[:password@]host:port[,host:port...]/service[/db]
                                         the primary Sentinel names for `service`, found through
                                         any of the sentinels listed (rediss+sentinel:// for
                                         TLS); the password is the Redis servers' one
  redis+cluster://[:password@]host:port[,host:port...]
                                         a Redis Cluster, found through any node listed
                                         (rediss+cluster:// for TLS)

`parse_redis_url` checks a URL without connecting; `redis_client` makes the client, failing fast
(connect 1 s, reply 2 s, never retried: callers already decide what to do without the store). A
bad or unsupported URL is one ConfigError line that never repeats the URL, which may carry a
password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from deployd.errors import ConfigError

CONNECT_TIMEOUT_SECONDS = 1.0
READ_TIMEOUT_SECONDS = 2.0
HEALTH_CHECK_SECONDS = 15

Kind = Literal["server", "sentinel", "cluster"]
RedisClient = redis.Redis | redis.RedisCluster

SUPPORTED = (
    "deployd takes redis://, rediss:// and unix:// URLs of one Redis server,"
    " redis+sentinel://[:password@]host:port[,host:port]/service[/db] and"
    " redis+cluster://[:password@]host:port[,host:port] (docs/operating.md)"
)
_SCHEMES: dict[str, tuple[Kind, bool]] = {
    "redis": ("server", False),
    "rediss": ("server", True),
    "unix": ("server", False),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
}


@dataclass(frozen=True)
class RedisTarget:
    """What a URL names, parsed and checked, with no connection made."""

    kind: Kind
    url: str  # as given: never put in a message (it may carry a password)
    hosts: tuple[tuple[str, int], ...] = ()  # sentinels or cluster seed nodes
    service: str = ""  # the Sentinel service name
    db: int = 0
    password: str | None = None
    username: str | None = None
    tls: bool = False

    @property
    def description(self) -> str:
        """Where the store is, for messages: never credentials."""
        if self.kind == "sentinel":
            return f"sentinel service {self.service!r} (db {self.db})"
        if self.kind == "cluster":
            return "cluster " + ",".join(f"{h}:{p}" for h, p in self.hosts)
        return ""  # one server: described from its client's connection settings


def parse_redis_url(url: str) -> RedisTarget:
    """The deployment `url` names; ConfigError (one line, no URL) when it is not usable."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in _SCHEMES:
        raise _unusable(f"unknown scheme {scheme + '://' if scheme else '(none)'}")
    kind, tls = _SCHEMES[scheme]
    if kind == "server":
        client = _server_client(url, None)  # parses and checks every option
        client.close()
        return RedisTarget("server", url, tls=tls)
    parts = urlsplit(url)
    if parts.query or parts.fragment:
        raise _unusable(f"{scheme}:// URLs take no options")
    hosts = _hosts(parts.netloc.rpartition("@")[2])
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    path = [p for p in parts.path.split("/") if p]
    if kind == "cluster":
        if path:
            raise _unusable("a Redis Cluster has only database 0: give no path")
        return RedisTarget(kind, url, hosts, password=password, username=username, tls=tls)
    if not path or len(path) > 2:
        raise _unusable("a Sentinel URL names the service: host:port[,host:port]/service[/db]")
    db = path[1] if len(path) == 2 else "0"
    if not db.isdigit():
        raise _unusable(f"the database must be a number, not {db!r}")
    service = unquote(path[0])
    return RedisTarget(kind, url, hosts, service, int(db), password, username, tls)


def redis_client(target: RedisTarget, *, timeout: float | None = None) -> RedisClient:
    """A client of `target` that fails fast; `timeout` replaces both limits.

    A cluster client reads the cluster's layout when it is made, so it connects: make one only
    where a RedisError is handled (RedisStore makes its client on first use)."""
    if target.kind == "server":
        return _server_client(target.url, timeout)
    if target.kind == "sentinel":
        return _sentinel_client(target, timeout)
    return redis.RedisCluster(
        startup_nodes=[_node(host, port) for host, port in target.hosts],
        password=target.password,
        username=target.username,
        ssl=target.tls,
        socket_connect_timeout=timeout or CONNECT_TIMEOUT_SECONDS,
        socket_timeout=timeout or READ_TIMEOUT_SECONDS,
        health_check_interval=HEALTH_CHECK_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )


def _server_client(url: str, timeout: float | None) -> redis.Redis:
    try:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout or CONNECT_TIMEOUT_SECONDS,
            socket_timeout=timeout or READ_TIMEOUT_SECONDS,
            health_check_interval=HEALTH_CHECK_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )
        # Options in the URL's query reach a connection only when one is made: make one (it
        # connects to nothing) so an unknown option (`?cluster=true`) is this error now, not a
        # TypeError at the first command.
        pool = client.connection_pool
        pool.connection_class(**pool.connection_kwargs)
    except (ValueError, TypeError) as e:
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(e))
        raise _unusable(f"unknown option {unknown.group(1)!r}" if unknown else str(e)) from e
    return client


def _sentinel_client(target: RedisTarget, timeout: float | None) -> redis.Redis:
    limits = {
        "socket_connect_timeout": timeout or CONNECT_TIMEOUT_SECONDS,
        "socket_timeout": timeout or READ_TIMEOUT_SECONDS,
    }
    # Each sentinel is asked once, on the same short limits: one that is down costs no retries.
    asking = {**limits, "ssl": target.tls, "retry": Retry(NoBackoff(), 0)}
    sentinel = redis.Sentinel(  # type: ignore[no-untyped-call]
        list(target.hosts), sentinel_kwargs=asking
    )
    # On a READONLY reply (the primary it holds was demoted) redis-py's Sentinel connection
    # drops itself and asks the sentinels again at the next command.
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        target.service,
        db=target.db,
        password=target.password,
        username=target.username,
        ssl=target.tls,
        health_check_interval=HEALTH_CHECK_SECONDS,
        retry=Retry(NoBackoff(), 0),
        **limits,
    )
    return client


def _node(host: str, port: int) -> redis.cluster.ClusterNode:
    return redis.cluster.ClusterNode(host, port)  # type: ignore[no-untyped-call]


def _hosts(netloc: str) -> tuple[tuple[str, int], ...]:
    hosts = []
    for each in netloc.split(","):
        host, colon, port = each.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _unusable("list the nodes as host:port[,host:port...]")
        hosts.append((host.strip("[]"), int(port)))
    return tuple(hosts)


def _unusable(why: str) -> ConfigError:
    # The URL itself is not repeated: it may carry a password.
    return ConfigError(f"not a usable Redis URL: {why} ({SUPPORTED})")
