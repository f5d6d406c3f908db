"""RedisStore beyond the shared contract: races on a real redis-server, Redis being away, keys."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fakeredis
import pytest
import redis

from deployd.channels import channel_digest
from deployd.errors import (
    ConfigError,
    PreconditionFailedError,
    StoreUnavailableError,
    StoreUninitializedError,
)
from deployd.server.settings import Settings
from deployd.store import ChannelRecord, open_store
from deployd.store.memory import MemoryStore
from deployd.store.redis import CHANGES_TOPIC, RedisStore
from tests.support.redis_server import RedisServer, free_port, require_redis_server

THREADS = 20


def document(n: int) -> dict[str, Any]:
    return {"name": "stable", "description": f"publish {n}", "releases": [{"version": f"1.{n}.0"}]}


def publish(store: RedisStore, n: int, expected_sequence: int | None = None) -> ChannelRecord:
    doc = document(n)
    return store.publish(
        "stable",
        document=doc,
        source=f"# publish {n}\n",
        digest=channel_digest(doc),
        publisher=f"thread-{n}",
        summary=f"publish {n}",
        expected_sequence=expected_sequence,
    )


def assert_complete(record: ChannelRecord) -> None:
    """Every part of a record belongs to the same publish."""
    n = int(record.publisher.removeprefix("thread-"))
    assert record.digest == channel_digest(record.document)
    assert record.document == document(n)
    assert (record.source, record.summary) == (f"# publish {n}\n", f"publish {n}")


def race(store: RedisStore, work: Callable[[int], Any]) -> tuple[list[Any], list[ChannelRecord]]:
    """Run work(0..THREADS-1) on as many threads released at once, while a reader polls.

    Returns what each call returned (a PreconditionFailedError counts as a result) and every
    record the reader saw.
    """
    start = threading.Barrier(THREADS + 1)
    done = threading.Event()

    def worker(i: int) -> Any:
        start.wait(timeout=10)
        try:
            return work(i)
        except PreconditionFailedError as e:
            return e

    def reader() -> list[ChannelRecord]:
        seen = []
        start.wait(timeout=10)
        while not done.is_set():
            record = store.get_channel("stable")
            if record is not None:
                seen.append(record)
        return seen

    with ThreadPoolExecutor(THREADS + 1) as pool:
        seen = pool.submit(reader)
        results = [pool.submit(worker, i) for i in range(THREADS)]
        outcomes = [future.result(timeout=30) for future in results]
        done.set()
        return outcomes, seen.result(timeout=30)


@pytest.fixture
def real_store(real_redis):
    return RedisStore(real_redis)


@pytest.mark.redis_server
def test_concurrent_publishes_each_get_their_own_sequence(real_store):
    outcomes, seen = race(real_store, lambda i: publish(real_store, i))
    assert sorted(record.sequence for record in outcomes) == list(range(1, THREADS + 1))
    history = real_store.history("stable")
    assert [record.sequence for record in history] == list(range(1, THREADS + 1))
    for record in outcomes:
        assert real_store.history_entry("stable", record.sequence) == record
    assert sorted(r.publisher for r in history) == sorted(f"thread-{i}" for i in range(THREADS))
    assert real_store.get_channel("stable") == history[-1]
    assert real_store.generation() == THREADS
    assert_reads_were_whole(seen)


@pytest.mark.redis_server
def test_if_match_races_have_exactly_one_winner(real_store):
    for sequence in range(1, 6):
        outcomes, seen = race(
            real_store, lambda i, expected=sequence - 1: publish(real_store, i, expected)
        )
        winners = [o for o in outcomes if isinstance(o, ChannelRecord)]
        assert [w.sequence for w in winners] == [sequence]
        assert all(isinstance(o, PreconditionFailedError) for o in outcomes if o not in winners)
        assert real_store.history_entry("stable", sequence) == winners[0]
        assert_reads_were_whole(seen)
    assert len(real_store.history("stable")) == 5


@pytest.mark.redis_server
def test_if_match_publishers_that_retry_all_land_once(real_store):
    def publish_until_it_lands(i: int) -> tuple[int, ChannelRecord, int]:
        conflicts = 0
        while True:
            current = real_store.get_channel("stable")
            expected = current.sequence if current else 0
            try:
                return expected, publish(real_store, i, expected), conflicts
            except PreconditionFailedError:
                conflicts += 1

    outcomes, seen = race(real_store, publish_until_it_lands)
    assert sorted(record.sequence for _, record, _ in outcomes) == list(range(1, THREADS + 1))
    for expected, record, _ in outcomes:
        assert record.sequence == expected + 1
        assert real_store.history_entry("stable", record.sequence) == record
    assert len(real_store.history("stable")) == THREADS
    assert_reads_were_whole(seen)


def assert_reads_were_whole(seen: list[ChannelRecord]) -> None:
    assert seen, "the reader never saw the channel"
    for record in seen:
        assert_complete(record)
    sequences = [record.sequence for record in seen]
    assert sequences == sorted(sequences), "a reader saw the sequence go back"


# --- Redis away

CALLS: dict[str, Callable[[RedisStore], Any]] = {
    "ping": lambda s: s.ping(),
    "sequences": lambda s: s.sequences(),
    "get_channel": lambda s: s.get_channel("stable"),
    "publish": lambda s: s.publish(
        "stable", document={}, source="", digest="d", publisher="p", summary="s"
    ),
    "publish_if_match": lambda s: s.publish(
        "stable",
        document={},
        source="",
        digest="d",
        publisher="p",
        summary="s",
        expected_sequence=0,
    ),
    "history": lambda s: s.history("stable"),
    "history_entry": lambda s: s.history_entry("stable", 1),
    "revoke": lambda s: s.revoke("jti-1"),
    "is_revoked": lambda s: s.is_revoked("jti-1"),
    "revocations_since": lambda s: s.revocations_since(0),
    "generation": lambda s: s.generation(),
    "add_counts": lambda s: s.add_counts(1, {"license:a": 1}),
}


@pytest.fixture
def closed_port_store():
    port = free_port()
    store = RedisStore.from_url(f"redis://:hunter2@127.0.0.1:{port}/0")
    yield store, port
    store.close()


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_every_call_fails_fast_when_redis_is_not_there(closed_port_store, call):
    store, port = closed_port_store
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as raised:
        call(store)
    assert time.monotonic() - started < 3
    assert isinstance(raised.value.__cause__, redis.RedisError)
    assert (raised.value.status, raised.value.code) == (503, "store_unavailable")
    assert f"Redis at 127.0.0.1:{port}/0 failed" in raised.value.message
    assert "hunter2" not in raised.value.message


def test_a_redis_that_never_answers_times_out_in_two_seconds():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts connections; nothing ever replies
        store = RedisStore.from_url(f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError, match="Timeout"):
            store.ping()
        # Without the socket timeout this would hang for good; the bound is wide for busy machines.
        assert time.monotonic() - started < 10
        store.close()


@pytest.mark.redis_server
def test_the_store_works_again_when_redis_comes_back(tmp_path):
    require_redis_server()
    server = RedisServer(free_port(), str(tmp_path))
    server.start()
    store = RedisStore.from_url(server.url)
    try:
        store.initialize()
        assert publish(store, 1).sequence == 1
        server.stop()
        with pytest.raises(StoreUnavailableError):
            store.get_channel("stable")
        server.start()  # an empty Redis: nothing was saved
        assert store.get_channel("stable") is None
        with pytest.raises(StoreUninitializedError):
            publish(store, 2)
        store.initialize()
        assert publish(store, 2).sequence == 1
    finally:
        store.close()
        server.stop()


# --- URLs and opening


@pytest.mark.parametrize(
    "url", ["http://:s3cret@localhost", "redis://:s3cret@localhost:notaport/0", "s3cret"]
)
def test_a_url_that_is_not_redis_is_a_config_error_without_the_password(url):
    with pytest.raises(ConfigError) as raised:
        RedisStore.from_url(url)
    assert "s3cret" not in raised.value.message


def test_from_url_fails_fast_and_never_retries():
    store = RedisStore.from_url("redis://localhost:6379/3")
    options = store.client.connection_pool.connection_kwargs
    assert (options["socket_connect_timeout"], options["socket_timeout"]) == (1.0, 2.0)
    assert options["health_check_interval"] > 0
    assert options["retry"].get_retries() == 0
    assert store.server == "localhost:6379/3"
    store.close()


def test_open_store_picks_redis_when_a_url_is_set():
    memory = open_store(Settings())
    assert isinstance(memory, MemoryStore)
    store = open_store(Settings(redis_url="redis://localhost:6379/0"))
    assert isinstance(store, RedisStore)
    store.close()


# --- keys and notifications


@pytest.fixture(params=["fakeredis", pytest.param("redis", marks=pytest.mark.redis_server)])
def client(request):
    if request.param == "fakeredis":
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        RedisStore(client).initialize()
        yield client
        client.close()
    else:
        yield request.getfixturevalue("real_redis")


def test_every_key_is_under_the_prefix(client):
    client.flushdb()
    store = RedisStore(client, prefix="acme:deployd:")
    store.initialize()
    publish(store, 1)
    store.revoke("jti-1")
    store.add_counts(7, {"license:a": 1})
    keys = sorted(key.decode() for key in client.keys("*"))
    assert keys == [
        "acme:deployd:channel:stable",
        "acme:deployd:channels",
        "acme:deployd:epoch",
        "acme:deployd:generation",
        "acme:deployd:history:stable",
        "acme:deployd:ratelimit:7",
        "acme:deployd:revocations",
        "acme:deployd:revoked",
    ]


def test_prefixes_keep_deployments_apart(client):
    one, two = RedisStore(client, prefix="one:"), RedisStore(client, prefix="two:")
    one.initialize()
    publish(one, 1)
    one.revoke("jti-1")
    assert (two.sequences(), two.generation(), two.is_revoked("jti-1")) == ({}, 0, False)
    assert two.marker().epoch is None


def test_publish_and_revoke_are_announced(client):
    store = RedisStore(client)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("deployd:" + CHANGES_TOPIC)
    pubsub.get_message(timeout=1)  # the subscription itself
    publish(store, 1)
    store.revoke("jti-1")
    store.revoke("jti-1")  # already revoked: nothing to announce

    def next_message(timeout=10.0):
        message = pubsub.get_message(timeout=timeout)
        return message["data"].decode() if message else None

    assert [next_message(), next_message(), next_message(timeout=0.1)] == [
        "channel:stable:1",
        "revocation",
        None,
    ]
    pubsub.close()


def test_revocations_are_kept_with_when_why_and_who(client):
    import json

    store = RedisStore(client)
    store.revoke("jti-1", reason="leaked in a ticket", by="alice")
    entry = json.loads(client.hget("deployd:revoked", "jti-1"))
    assert entry.keys() == {"revokedAt", "reason", "by"}
    assert (entry["reason"], entry["by"]) == ("leaked in a ticket", "alice")


# --- persistence


def test_persistence_is_read_from_the_server(real_redis, redis_server):
    persistence = RedisStore(real_redis).persistence()
    assert (persistence.checked, persistence.persisted) == (True, False)
    assert persistence.description == "appendonly=no; save=''"
    real_redis.config_set("appendonly", "yes")
    try:
        persistence = RedisStore(real_redis).persistence()
        assert persistence.persisted
        assert persistence.description == "appendonly=yes appendfsync=everysec; save=''"
    finally:
        real_redis.config_set("appendonly", "no")


def test_a_server_that_refuses_config_is_said_to_be_unchecked():
    # fakeredis, like many managed Redis services, does not answer CONFIG GET.
    store = RedisStore(fakeredis.FakeRedis(server=fakeredis.FakeServer()))
    persistence = store.persistence()
    assert (persistence.checked, persistence.persisted) == (False, False)
    assert persistence.description.startswith("could not be checked")


def test_nothing_persisted_is_one_warning_per_process(real_redis, caplog, monkeypatch):
    from deployd.server import services

    monkeypatch.setattr(services, "_persistence_checked", False)
    caplog.set_level("INFO", logger="deployd.server.services")
    services.warn_unless_persisted(RedisStore(real_redis))
    services.warn_unless_persisted(RedisStore(real_redis))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert warnings[0].startswith("Redis persists nothing (appendonly=no; save='')")
