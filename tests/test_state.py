"""One process's knowledge: compiled channels kept fresh, bounded, served through outages."""

from __future__ import annotations

import threading

import fakeredis
import pytest

from deployd.channels import parse_channel_text
from deployd.errors import StoreUnavailableError, StoreUninitializedError
from deployd.publishing import publish_channel
from deployd.server.view import ServerState
from deployd.store.memory import MemoryStore
from deployd.store.redis import RedisStore
from tests.support.factories import CHANNEL_YAML


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


class FlakyStore(MemoryStore):
    """A memory store that can be switched off, as Redis can go away."""

    down = False
    reads = 0

    def __getattribute__(self, name):
        attribute = super().__getattribute__(name)
        if name in {"marker", "generation", "sequences", "get_channel", "revocations_since"}:
            if super().__getattribute__("down"):
                raise StoreUnavailableError("store is down")
            if name == "get_channel":
                self.reads += 1
        return attribute


def publish(store, name: str, extra: str = "") -> None:
    text = CHANNEL_YAML.format(name=name) + extra
    channel = parse_channel_text(text, filename=f"{name}.yaml")
    publish_channel(store, channel, source=text, publisher="test")


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store():
    store = FlakyStore()
    for name in ("a", "b", "c"):
        publish(store, name)
    store.reads = 0
    return store


def test_a_publish_is_seen_after_the_refresh_interval(store, clock):
    state = ServerState(store, refresh_interval=0.5, clock=clock)
    assert state.channel("a")[1].newest.version == "1.2.0"
    publish(store, "a", "  - version: 1.3.0\n    chart: {version: 0.13.0}\n")
    assert state.channel("a")[0] == 1, "asked the store again before the interval passed"
    clock.now += 0.5
    sequence, channel = state.channel("a")
    assert (sequence, channel.newest.version) == (2, "1.3.0")


def test_compiled_channels_are_bounded_and_an_evicted_one_is_compiled_from_memory(store, clock):
    state = ServerState(store, max_channels=2, clock=clock)
    for name in ("a", "b", "a", "c"):  # "b" is the least recently used when "c" arrives
        state.channel(name)
    assert store.reads == 3
    assert state.compiled_count() == 2
    state.channel("a")
    state.channel("c")
    assert store.reads == 3, "recently used channels are answered from memory"
    compiled = state.channel("b")
    assert compiled[1].name == "b"
    assert store.reads == 3, "an evicted channel is compiled again from its document, not read"
    assert state.compiled_count() == 2
    assert state.held_documents()[0] == 3
    publish(store, "b", "  - version: 1.3.0\n    chart: {version: 0.13.0}\n")
    reads = store.reads
    clock.now += 0.5
    state.channel("a")
    sequence, channel = state.channel("b")
    assert (sequence, channel.newest.version) == (2, "1.3.0"), "a held document is not served stale"
    assert store.reads == reads + 1


def test_background_rounds_hold_every_channel_and_no_poll_reads_the_store(clock):
    store = FlakyStore()
    names = [f"ch-{i:02d}" for i in range(12)]
    for name in names:
        publish(store, name)
    store.reads = 0
    state = ServerState(store, auto_refresh=False, max_channels=3, clock=clock)
    assert state.background_round()
    assert state.held_documents()[0] == 12
    assert state.compiled_count() == 3, "compiling ahead stops at the cache size"
    reads = store.reads
    assert reads == 12, "each document is read once; compiling ahead reads none again"
    for name in names + names:
        sequence, channel = state.channel(name)
        assert (sequence, channel.name) == (1, name)
        assert state.sequence(name) == 1
    assert store.reads == reads, "every poll compiled from memory"
    assert state.compiled_count() == 3
    # A publish: the next round fetches the document that changed, and only that one.
    publish(store, "ch-07", "  - version: 1.3.0\n    chart: {version: 0.13.0}\n")
    reads = store.reads
    assert state.background_round()
    assert store.reads == reads + 1
    assert state.sequence("ch-07") == 2
    store.down = True
    assert not state.background_round()
    assert state.channel("ch-07")[1].newest.version == "1.3.0", "served through the outage"
    assert state.sequence("nope") is None


def test_cached_channels_are_served_while_the_store_is_down(store, clock):
    state = ServerState(store, clock=clock)
    state.channel("a")
    store.down = True
    clock.now += 10
    assert state.channel("a")[1].name == "a"
    assert not state.store_reachable
    with pytest.raises(StoreUnavailableError):
        state.channel("b")  # known to exist, never loaded: no answer without the store
    store.down = False
    clock.now += 10
    assert state.channel("b")[1].name == "b"
    assert state.store_reachable


def test_unknown_channels_are_none(store, clock):
    assert ServerState(store, clock=clock).channel("nope") is None


# --- a store that lost its data or went back in time (deployd/store/__init__.py)


class Redis:
    """A Redis (fakeredis) that can restart empty or from a snapshot taken earlier (RDB)."""

    def __init__(self) -> None:
        self.client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        self.store = RedisStore(self.client)
        self.store.initialize()
        self._saved: dict[bytes, bytes] = {}

    def save(self) -> None:
        self._saved = {key: self.client.dump(key) for key in self.client.keys("*")}

    def restart_empty(self) -> None:
        self.client.flushall()

    def restart_from_snapshot(self) -> None:
        self.client.flushall()
        for key, value in self._saved.items():
            self.client.restore(key, 0, value)


def version(state: ServerState, name: str = "a") -> tuple[int, str]:
    sequence, channel = state.channel(name)
    return sequence, channel.newest.version


def release(n: int) -> str:
    return f"  - version: 1.{n}.0\n    chart: {{version: 0.{n}.0}}\n"


def test_a_store_that_restarted_empty_is_not_served_until_initialised_then_revocations_count():
    redis = Redis()
    publish(redis.store, "a")
    redis.store.revoke("old")
    state = ServerState(redis.store, refresh_interval=0)
    resets = []
    state.add_reset_listener(lambda: resets.append(True))
    assert version(state) == (1, "1.2.0") and state.is_revoked("old")

    redis.restart_empty()
    with pytest.raises(StoreUninitializedError):
        state.channel("a")
    with pytest.raises(StoreUninitializedError):
        state.is_revoked("old")
    assert resets == [True]
    assert redis.store.floors() == {"a": 1}, "the worker recorded what it had served"

    redis.store.initialize()
    publish(redis.store, "a", release(3))
    redis.store.revoke("new")  # first in the new log, where the old offset (1) would skip it
    assert version(state) == (2, "1.3.0")
    assert state.is_revoked("new") and not state.is_revoked("old")


def test_a_store_back_from_an_older_snapshot_is_served_as_it_is_and_publishes_go_above():
    redis = Redis()
    publish(redis.store, "a")
    redis.save()
    publish(redis.store, "a", release(3))
    publish(redis.store, "a", release(4))
    redis.store.revoke("after-the-snapshot")
    old_worker = ServerState(redis.store, refresh_interval=0)
    assert version(old_worker) == (3, "1.4.0")

    redis.restart_from_snapshot()
    assert version(old_worker) == (1, "1.2.0"), "kept serving what the store no longer has"
    assert not old_worker.is_revoked("after-the-snapshot")
    new_worker = ServerState(redis.store, refresh_interval=0)
    assert version(new_worker) == (1, "1.2.0")

    publish(redis.store, "a", release(5))
    assert version(old_worker) == version(new_worker) == (4, "1.5.0")


def test_a_revocation_log_that_shrank_is_read_again_from_the_start():
    redis = Redis()
    for jti in ("one", "two"):
        redis.store.revoke(jti)
    redis.save()
    redis.store.revoke("three")
    state = ServerState(redis.store, refresh_interval=0)
    assert state.is_revoked("three")
    redis.restart_from_snapshot()
    redis.client.incrby("deployd:generation", 5)  # the generation alone would not tell
    redis.store.revoke("four")
    assert [state.is_revoked(j) for j in ("one", "two", "three", "four")] == [
        True,
        True,
        False,
        True,
    ]


def test_a_replaced_store_is_reloaded_whole():
    redis = Redis()
    publish(redis.store, "a")
    saved = redis.store.export()
    publish(redis.store, "a", release(3))
    state = ServerState(redis.store, refresh_interval=0)
    assert version(state) == (2, "1.3.0")
    redis.store.restore(saved, force=True)
    assert version(state) == (1, "1.2.0")
    publish(redis.store, "a", release(4))
    assert version(state) == (3, "1.4.0")


def test_a_channel_compiled_past_the_last_refresh_is_checked_too(clock):
    redis = Redis()
    publish(redis.store, "a")
    redis.save()
    state = ServerState(redis.store, refresh_interval=0.5, clock=clock)
    state.refresh(force=True)
    publish(redis.store, "a", release(3))
    assert version(state) == (2, "1.3.0"), "compiled from the store before the next refresh"
    redis.restart_from_snapshot()
    redis.store.revoke("someone")  # the generation moves on, past the worker's
    clock.now += 1
    assert version(state) == (1, "1.2.0")
    publish(redis.store, "a", release(4))
    clock.now += 1
    assert version(state) == (3, "1.4.0"), "sequence 2 named 1.3.0 already"


class SlowStore(MemoryStore):
    """A memory store whose first read of a refresh (`marker`) waits until `release` is set, as a
    slow Redis would."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = threading.Event()
        self.release = threading.Event()

    def marker(self):
        self.reading.set()
        assert self.release.wait(timeout=30), "the store was never released"
        return super().marker()


def test_a_request_during_the_first_load_waits_for_it_instead_of_finding_nothing(clock):
    store = SlowStore()
    store.release.set()
    publish(store, "a")
    store.release.clear()
    state = ServerState(store, refresh_interval=0.5, clock=clock)
    first: list = []
    loader = threading.Thread(target=lambda: first.append(state.channel("a")))
    loader.start()
    assert store.reading.wait(timeout=30)
    # The first request is reading the store; a second one (another thread or greenlet of the
    # same worker) must not answer from the empty state meanwhile.
    releaser = threading.Timer(0.2, store.release.set)
    releaser.start()
    try:
        second = state.channel("a")
    finally:
        store.release.set()
        loader.join(timeout=30)
        releaser.cancel()
    assert second is not None and second[1].name == "a"
    assert first and first[0] is not None


def test_under_a_background_driver_reads_never_touch_the_store_after_the_first_view(store, clock):
    state = ServerState(store, auto_refresh=False, clock=clock)
    assert state.channel("a")[0] == 1  # the first view, loaded by this first read
    publish(store, "a", "  - version: 1.3.0\n    chart: {version: 0.13.0}\n")
    reads = store.reads
    clock.now += 60
    assert state.channel("a")[0] == 1, "a read refreshed: only the background round may"
    assert state.background_round()
    # The changed channel, and the two never asked for, are compiled by the background round.
    assert store.reads == reads + 3
    assert state.channel("a")[0] == 2
    assert store.reads == reads + 3

    store.down = True
    assert not state.background_round()
    assert not state.store_reachable
    assert state.channel("a")[0] == 2
    assert state.view_age() == 0
    clock.now += 5
    assert state.view_age() == 5


def test_a_worker_serves_channels_it_was_never_asked_for_through_an_outage(store, clock):
    # A fresh worker (or one restarted by gunicorn) whose fleet had not polled some channel yet
    # used to answer 503 for it as soon as the store hung: only requests compiled channels.
    state = ServerState(store, auto_refresh=False, clock=clock)
    assert state.background_round()
    reads = store.reads
    store.down = True
    assert not state.background_round()
    assert [state.channel(name)[1].name for name in ("a", "b", "c")] == ["a", "b", "c"]
    assert store.reads == reads


def test_compiling_ahead_never_evicts_a_channel_and_stops_at_the_cache_size(clock):
    store = FlakyStore()
    for name in ("a", "b", "c", "d"):
        publish(store, name)
    state = ServerState(store, auto_refresh=False, max_channels=2, clock=clock)
    assert state.channel("d") is not None
    assert state.background_round()
    reads = store.reads
    assert state.background_round()
    assert store.reads == reads, "a full cache compiles nothing more"
    assert state.compiled_count() == 2
    store.down = True
    assert state.channel("d") is not None  # the one asked for stayed
    assert state.channel("a") is not None  # the first by name filled the room left
    assert state.channel("b") is not None  # not compiled ahead, but its document is held
    assert store.reads == reads


def test_held_documents_are_counted_as_they_are_replaced(clock):
    store = FlakyStore()
    publish(store, "a")
    state = ServerState(store, auto_refresh=False, clock=clock)
    assert state.background_round()
    count, size = state.held_documents()
    assert count == 1 and 100 < size < 2048
    publish(store, "a", "  - version: 1.3.0\n    chart: {version: 0.13.0}\n")
    assert state.background_round()
    count, longer = state.held_documents()
    assert count == 1 and size < longer < 2 * size, "the longer document replaced the shorter"


def test_a_replaced_store_at_the_same_generation_has_its_documents_fetched_again(clock):
    # A round that finds every document held skips the look until the generation moves; a store
    # replaced by one at the same generation must still have its documents read again.
    redis = Redis()
    publish(redis.store, "a")
    publish(redis.store, "b")
    state = ServerState(redis.store, auto_refresh=False, max_channels=1, clock=clock)
    assert state.background_round()  # fetches both documents
    assert state.background_round()  # finds none missing: skips the look from now on
    assert state.held_documents()[0] == 2
    generation = redis.store.marker().generation
    redis.client.flushall()
    fresh = RedisStore(redis.client)
    fresh.initialize()
    publish(fresh, "a", release(3))
    publish(fresh, "b", release(3))
    assert fresh.marker().generation == generation
    assert state.background_round()
    assert state.held_documents()[0] == 2
    assert [state.channel(name)[1].newest.version for name in ("a", "b")] == ["1.3.0", "1.3.0"]
