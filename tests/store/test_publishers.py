"""Publisher credentials in the store: every backend (memory, fakeredis, real Redis) alike."""

from __future__ import annotations

import json
import re
import time

import fakeredis
import pytest
import redis

from deployd.errors import ConflictError, StoreUnavailableError
from deployd.store.redis import RedisStore
from tests.support.redis_server import free_port

RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
HASH_A, HASH_B, HASH_C = "a" * 64, "b" * 64, "c" * 64


def test_no_publishers_at_first(store):
    assert store.publishers() == []
    assert store.publisher_for_hash(HASH_A) is None
    assert store.revoke_publisher("alice") is False


def test_an_added_publisher_is_found_by_its_token_hash(store):
    record = store.add_publisher("alice", HASH_A)
    assert (record.name, record.token_hash, record.revoked_at) == ("alice", HASH_A, None)
    assert record.active
    assert RFC3339_UTC.fullmatch(record.created_at)
    assert store.publisher_for_hash(HASH_A).name == "alice"
    assert store.publisher_for_hash(HASH_B) is None
    assert store.publishers() == [record]


def test_publishers_are_listed_by_name(store):
    for name, digest in (("carol", HASH_C), ("alice", HASH_A), ("bob", HASH_B)):
        store.add_publisher(name, digest)
    assert [p.name for p in store.publishers()] == ["alice", "bob", "carol"]


def test_a_revoked_publisher_is_kept_but_its_token_stops_working(store):
    store.add_publisher("alice", HASH_A)
    store.add_publisher("bob", HASH_B)
    assert store.revoke_publisher("alice") is True
    assert store.publisher_for_hash(HASH_A) is None
    assert store.publisher_for_hash(HASH_B).name == "bob"
    alice = store.publishers()[0]
    assert alice.name == "alice" and not alice.active
    assert RFC3339_UTC.fullmatch(alice.revoked_at)
    assert store.revoke_publisher("alice") is False  # already revoked
    assert store.revoke_publisher("nobody") is False


def test_a_revoked_name_can_get_a_new_token(store):
    store.add_publisher("alice", HASH_A)
    store.revoke_publisher("alice")
    record = store.add_publisher("alice", HASH_B)
    assert record.active
    assert store.publisher_for_hash(HASH_A) is None
    assert store.publisher_for_hash(HASH_B).name == "alice"
    assert store.publishers() == [record]


@pytest.mark.parametrize(
    ("name", "digest", "message"),
    [("alice", HASH_B, "exists"), ("bob", HASH_A, "in use")],
    ids=["active name", "token hash in use"],
)
def test_an_active_name_or_a_used_hash_is_refused(store, name, digest, message):
    first = store.add_publisher("alice", HASH_A)
    with pytest.raises(ConflictError, match=message) as raised:
        store.add_publisher(name, digest)
    assert raised.value.status == 409
    assert store.publishers() == [first]
    assert store.publisher_for_hash(HASH_A).name == "alice"
    assert store.publisher_for_hash(HASH_B) is None


def test_publisher_changes_leave_the_generation_alone(store):
    store.add_publisher("alice", HASH_A)
    store.revoke_publisher("alice")
    assert store.generation() == 0


def test_publisher_keys_are_under_the_prefix_and_hold_no_token():
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    store = RedisStore(client, prefix="acme:")
    store.add_publisher("alice", HASH_A)
    store.add_publisher("bob", HASH_B)
    store.revoke_publisher("bob")
    keys = sorted(key.decode() for key in client.keys("*"))
    assert keys == ["acme:publisher-tokens", "acme:publishers"]
    assert client.hgetall("acme:publisher-tokens") == {HASH_A.encode(): b"alice"}
    client.close()


def test_a_publisher_keeps_its_scopes_through_revocation(store):
    record = store.add_publisher("ci", HASH_A, actions=("publish", "promote"), channels=("beta-*",))
    assert (record.actions, record.channels) == (("publish", "promote"), ("beta-*",))
    assert store.publisher_for_hash(HASH_A) == record
    assert store.publishers() == [record]
    store.revoke_publisher("ci")
    revoked = store.publishers()[0]
    assert (revoked.actions, revoked.channels, revoked.active) == (
        ("publish", "promote"),
        ("beta-*",),
        False,
    )


def test_a_publisher_added_without_scopes_is_admin(store):
    record = store.add_publisher("alice", HASH_A)
    assert (record.actions, record.channels) == (("admin",), ("*",))
    assert store.publisher_for_hash(HASH_A) == record


def test_a_record_written_before_scopes_reads_as_admin():
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    old = {"name": "ci", "token_hash": HASH_A, "created_at": "2026-01-01T00:00:00Z"}
    client.hset("deployd:publishers", "ci", json.dumps({**old, "revoked_at": None}))
    client.hset("deployd:publisher-tokens", HASH_A, "ci")
    store = RedisStore(client)
    record = store.publisher_for_hash(HASH_A)
    assert (record.name, record.actions, record.channels) == ("ci", ("admin",), ("*",))
    assert store.publishers() == [record]
    assert store.revoke_publisher("ci") is True
    assert store.publishers()[0].actions == ("admin",)
    client.close()


PUBLISHER_CALLS = {
    "add_publisher": lambda s: s.add_publisher("alice", HASH_A),
    "publishers": lambda s: s.publishers(),
    "revoke_publisher": lambda s: s.revoke_publisher("alice"),
    "publisher_for_hash": lambda s: s.publisher_for_hash(HASH_A),
}


@pytest.mark.parametrize("call", PUBLISHER_CALLS.values(), ids=PUBLISHER_CALLS.keys())
def test_publisher_calls_fail_fast_when_redis_is_not_there(call):
    store = RedisStore.from_url(f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as raised:
        call(store)
    assert time.monotonic() - started < 3
    assert isinstance(raised.value.__cause__, redis.RedisError)
    assert "hunter2" not in raised.value.message
    store.close()
