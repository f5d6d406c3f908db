"""One process's knowledge: compiled channels kept fresh, bounded, served through outages."""

from __future__ import annotations

import pytest

from deployd.channels import parse_channel_text
from deployd.errors import StoreUnavailableError
from deployd.publishing import publish_channel
from deployd.state import ServerState
from deployd.store.memory import MemoryStore
from tests.factories import CHANNEL_YAML


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
        if name in {"generation", "sequences", "get_channel", "revocations_since"}:
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


def test_compiled_channels_are_bounded_and_reloaded_when_evicted(store, clock):
    state = ServerState(store, max_channels=2, clock=clock)
    for name in ("a", "b", "a", "c"):  # "b" is the least recently used when "c" arrives
        state.channel(name)
    assert store.reads == 3
    state.channel("a")
    state.channel("c")
    assert store.reads == 3, "recently used channels are answered from memory"
    assert state.channel("b")[1].name == "b"
    assert store.reads == 4, "an evicted channel is read from the store again"


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


def test_under_a_background_driver_reads_never_touch_the_store_after_the_first_view(store, clock):
    state = ServerState(store, auto_refresh=False, clock=clock)
    assert state.channel("a")[0] == 1  # the first view, loaded by this first read
    publish(store, "a", "  - version: 1.3.0\n    chart: {version: 0.13.0}\n")
    reads = store.reads
    clock.now += 60
    assert state.channel("a")[0] == 1, "a read refreshed: only the background round may"
    assert state.background_round()
    assert store.reads == reads + 1, "the changed channel is compiled by the background round"
    assert state.channel("a")[0] == 2
    assert store.reads == reads + 1

    store.down = True
    assert not state.background_round()
    assert not state.store_reachable
    assert state.channel("a")[0] == 2
    with pytest.raises(StoreUnavailableError):
        state.channel("b")  # never loaded: no answer while the store is unreachable
    assert state.view_age() == 0
    clock.now += 5
    assert state.view_age() == 5
