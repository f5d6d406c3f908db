"""The stores every contract test runs against: memory, Redis on fakeredis, a real redis-server
and a real three-primary Redis Cluster."""

from __future__ import annotations

from collections.abc import Iterator

import fakeredis
import pytest

from deployd.store import Store
from deployd.store.memory import MemoryStore
from deployd.store.redis import RedisStore

BACKENDS = [
    "memory",
    "fakeredis",
    pytest.param("redis", marks=pytest.mark.redis_server),
    pytest.param("cluster", marks=pytest.mark.redis_server),
]


def open_backend(request: pytest.FixtureRequest, *, initialized: bool = True) -> Iterator[Store]:
    """An empty store of the kind `request.param` names (a fixture body: use with yield from),
    initialised as `deployd store init` does unless `initialized` is False (Redis restarted
    empty)."""
    if request.param == "memory":
        yield MemoryStore(initialize=initialized)
    elif request.param == "fakeredis":
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        store = RedisStore(client)
        if initialized:
            store.initialize()
        yield store
        client.close()
    elif request.param == "cluster":
        client = request.getfixturevalue("real_cluster")  # initialised
        if not initialized:
            client.flushall(target_nodes=client.PRIMARIES)
        yield RedisStore(client)
    else:
        client = request.getfixturevalue("real_redis")  # initialised
        if not initialized:
            client.flushall()
        yield RedisStore(client)
