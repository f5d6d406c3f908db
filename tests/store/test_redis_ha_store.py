"""The store on real Sentinel-managed Redis (tests/support/redis_ha.py): a change is acknowledged
only once a replica has it, and a store keeps working when its primary is demoted under it."""

from __future__ import annotations

import pytest

from deployd.errors import StoreUnavailableError
from deployd.store.redis import RedisStore
from tests.support.redis_ha import SERVICE, wait_until

pytestmark = pytest.mark.redis_server

DOCUMENT = {"name": "stable", "releases": []}


def publish(store: RedisStore, summary: str) -> int:
    record = store.publish(
        "stable", document=DOCUMENT, source="", digest="d", publisher="t", summary=summary
    )
    return record.sequence


@pytest.fixture
def store(sentinels):
    opened = RedisStore.from_url(sentinels.url)
    opened.initialize()
    yield opened
    opened.close()


def test_a_change_no_replica_confirmed_is_not_acknowledged(sentinels, store):
    assert publish(store, "first") == 1
    replica = sentinels.servers[1]
    replica.pause()
    try:
        with pytest.raises(StoreUnavailableError, match="no replica confirmed the change"):
            publish(store, "unconfirmed")
    finally:
        replica.resume()
    # Written on the primary all the same (it may be applied): the next publish goes above it.
    assert publish(store, "confirmed") == 3


def test_a_store_follows_its_primary_when_sentinel_demotes_it(sentinels, store):
    assert publish(store, "before") == 1
    old = sentinels.primary_port()
    assert old is not None
    sentinels.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", SERVICE)
    new = sentinels.wait_for_failover(old)
    # The old primary lives on as a replica: a connection still open to it gets READONLY once,
    # reported as the store being unavailable, and the next call asks the sentinels again.
    wait_until(
        lambda: sentinels.replicas_in_sync(sentinels.server_on(new)) == 1, "old primary in sync"
    )

    def published() -> int | None:
        try:
            return publish(store, "after")
        except StoreUnavailableError:
            return None

    assert wait_until(published, "a publish on the new primary") == 2
    assert [r.summary for r in store.history("stable")] == ["before", "after"]
    assert sentinels.server_on(new).client().hexists("deployd:history:stable", "2")


def test_a_cluster_is_as_persisted_as_its_least_persisted_primary(real_cluster, redis_cluster):
    store = RedisStore(real_cluster)
    nodes = [node.client() for node in redis_cluster.nodes]
    try:
        for volatile in (nodes[0], nodes[-1]):
            for node in nodes:
                node.config_set("appendonly", "no" if node is volatile else "yes")
            assert store.persistence().persisted is False
            assert "appendonly=no" in store.persistence().description
        for node in nodes:
            node.config_set("appendonly", "yes")
        assert store.persistence().persisted is True
    finally:
        for node in nodes:
            node.config_set("appendonly", "no")


def test_changes_are_announced_on_a_cluster(real_cluster):
    store = RedisStore(real_cluster)
    pubsub = real_cluster.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("deployd:{core}:changes")
    pubsub.get_message(timeout=1)  # the subscription itself
    publish(store, "first")
    store.revoke("jti-1")

    def next_message() -> str | None:
        message = pubsub.get_message(timeout=10)
        return message["data"].decode() if message else None

    assert [next_message(), next_message()] == ["channel:stable:1", "revocation"]
    pubsub.close()
