"""The stores every contract test runs against: memory, Redis on fakeredis, a real redis-server."""

from __future__ import annotations

import fakeredis
import pytest

from deployd.store.memory import MemoryStore
from deployd.store.redis import RedisStore

BACKENDS = [
    "memory",
    "fakeredis",
    pytest.param("redis", marks=pytest.mark.redis_server),
]


@pytest.fixture(params=BACKENDS)
def store(request):
    """An empty store of each kind in turn."""
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "fakeredis":
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        yield RedisStore(client)
        client.close()
    else:
        yield RedisStore(request.getfixturevalue("real_redis"))
