"""REDIS_URL forms (deployd/store/connect.py): what each names, and that a store on any of them
connects to nothing until it is used and then fails in one line without the password."""

from __future__ import annotations

import pytest

from deployd.errors import StoreUnavailableError
from deployd.fleet.model import CheckIn
from deployd.store.connect import parse_redis_url
from deployd.store.redis import RedisStore


def test_a_sentinel_url_names_its_sentinels_service_database_and_password():
    target = parse_redis_url("redis+sentinel://:s%40cret@10.0.0.1:26379,sentinel-b:26380/deployd/2")
    assert target.kind == "sentinel"
    assert target.hosts == (("10.0.0.1", 26379), ("sentinel-b", 26380))
    assert (target.service, target.db, target.password, target.tls) == (
        "deployd",
        2,
        "s@cret",
        False,
    )
    assert parse_redis_url("rediss+sentinel://h:1/deployd").tls is True
    assert parse_redis_url("redis+sentinel://h:1/deployd").db == 0


def test_a_cluster_url_names_its_seed_nodes():
    target = parse_redis_url("redis+cluster://:pw@node-a:7000,node-b:7001")
    assert (target.kind, target.hosts, target.password) == (
        "cluster",
        (("node-a", 7000), ("node-b", 7001)),
        "pw",
    )
    assert "pw" not in target.description


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://:hunter2@127.0.0.1:1,127.0.0.1:2",
        "redis+sentinel://:hunter2@127.0.0.1:1/deployd/0",
    ],
)
def test_a_store_on_an_unreachable_ha_url_is_made_and_fails_only_when_used(url):
    store = RedisStore.from_url(url)  # connects to nothing: a server can start without Redis
    with pytest.raises(StoreUnavailableError) as raised:
        store.marker()
    message = raised.value.message
    assert "hunter2" not in message and "\n" not in message
    store.close()


def test_fleet_check_ins_on_an_unreachable_cluster_are_the_store_being_unavailable():
    store = RedisStore.from_url("redis+cluster://127.0.0.1:1")
    check_in = CheckIn(
        key="k", subject="acme", agent_id="a", channel="stable", served="1.0.0", seen=1.0
    )
    with pytest.raises(StoreUnavailableError):
        store.record_checkins([check_in], feed_cap=10)
