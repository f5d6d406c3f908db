"""A worker's view of the store: loaded once before its first answers, refreshed in the background,
and reported by /readyz without a store round trip."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest

from deployd.errors import StoreUnavailableError
from deployd.publishing import seed_store
from deployd.server.app import create_app
from deployd.store import StoreMarker
from deployd.store.memory import MemoryStore
from tests.support.http import CHANNEL_URL, basic

THREADS = 16


class SlowFirstRead(MemoryStore):
    """A memory store whose first read of its marker (epoch and generation) waits until the test
    lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.first_read_started = threading.Event()
        self.release = threading.Event()
        self._first = True

    def marker(self) -> StoreMarker:
        if self._first:
            self._first = False
            self.first_read_started.set()
            self.release.wait(30)
        return super().marker()


class Switchable(MemoryStore):
    """A memory store that can be made unreachable, or to hang, as Redis can."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.hang = threading.Event()  # set: reads wait until it is cleared

    def marker(self) -> StoreMarker:
        while self.hang.is_set():
            time.sleep(0.01)
        if self.down:
            raise StoreUnavailableError("store is down")
        return super().marker()


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not seen within {timeout} s"
        time.sleep(0.01)


def test_concurrent_first_polls_wait_for_the_first_view_and_none_sees_an_empty_one(settings, kit):
    store = SlowFirstRead()
    seed_store(store, settings.channels_dir)
    client = create_app(settings, store=store).test_client()
    license = kit.issue(channel="stable")
    statuses: list[int] = []

    def poll() -> None:
        statuses.append(client.get(CHANNEL_URL, headers=basic(license)).status_code)

    threads = [threading.Thread(target=poll) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    assert store.first_read_started.wait(30)
    # Give the other polls every chance to answer before the first read ends (they must not:
    # they wait for it); on a slow machine some arrive later, which proves less but never fails.
    deadline = time.monotonic() + 2
    while len(statuses) < THREADS - 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    store.release.set()
    for thread in threads:
        thread.join(30)
    assert statuses == [200] * THREADS


def test_readyz_reports_the_view_and_the_store_and_fails_when_it_is_unreachable(settings, kit):
    store = Switchable()
    seed_store(store, settings.channels_dir)
    client = create_app(settings, store=store).test_client()
    license = kit.issue(channel="stable")
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["store"] == "reachable"
    assert client.get(CHANNEL_URL, headers=basic(license)).status_code == 200

    store.down = True
    wait_for(lambda: client.get("/readyz").status_code == 503)
    body = client.get("/readyz").get_json()
    assert (body["error"]["code"], body["status"], body["store"]) == (
        "store_unavailable",
        "not_ready",
        "unreachable",
    )
    assert body["viewAgeSeconds"] >= 0 and body["revocationsAgeSeconds"] >= 0
    # The cached spec is still served meanwhile.
    assert client.get(CHANNEL_URL, headers=basic(license)).status_code == 200

    store.down = False
    wait_for(lambda: client.get("/readyz").status_code == 200)


@pytest.fixture
def hanging_app(settings):
    store = Switchable()
    seed_store(store, settings.channels_dir)
    app = create_app(replace(settings, ready_max_staleness=0.2), store=store)
    yield app, store
    store.hang.clear()


def test_a_hung_store_is_a_stale_view_while_polls_are_answered(hanging_app, kit):
    app, store = hanging_app
    client = app.test_client()
    license = kit.issue(channel="stable")
    assert client.get("/readyz").status_code == 200
    spec = client.get(CHANNEL_URL, headers=basic(license))
    assert spec.status_code == 200

    store.hang.set()  # the background refresh now waits; requests must not
    wait_for(lambda: client.get("/readyz").status_code == 503)
    body = client.get("/readyz").get_json()
    assert body["error"]["code"] == "view_stale"
    assert body["viewAgeSeconds"] > 0.2
    assert client.get(CHANNEL_URL, headers=basic(license)).data == spec.data
    store.hang.clear()
    wait_for(lambda: client.get("/readyz").status_code == 200)
