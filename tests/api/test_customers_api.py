"""Customer records over HTTP and on the poll path, on every store: the record layered over the
license (assigned channel, extra channels, pin, hold) identically on the fast path and in the
Flask view, the CRUD endpoints, their validation and their scope."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from deployd.errors import StoreUnavailableError
from deployd.protocol import INSTANCE_ID_HEADER
from deployd.publishers import Scopes
from deployd.server.app import create_app
from deployd.store import CustomerRecord
from deployd.store.memory import MemoryStore
from tests.support.backends import BACKENDS, open_backend
from tests.support.http import CHANNEL_URL, basic, error_of
from tests.support.publisher_auth import bearer
from tests.support.world import World

CUSTOMER_URL = "/api/v1/customers/acme"


@pytest.fixture(params=BACKENDS)
def backend(request):
    yield from open_backend(request)


@pytest.fixture
def world(tmp_path, backend):
    return World(tmp_path, store=backend)


@pytest.fixture
def token(world):
    return world.publisher_token("alice", scopes=Scopes.of(["customers"], []))


_instances = itertools.count()


def poll(client, license, query="", **headers):
    """The same poll twice: the first is answered by the Flask view (the license is new to the
    worker), the second by the fast path; both must agree. Returns (status, release or code).

    Each poll is a new instance (its own Deployd-Instance-Id), so what the server knows an
    instance runs (deployd.fleet: required releases are stepped from it) plays no part here."""
    answers = []
    for _ in range(2):
        instance = {INSTANCE_ID_HEADER: f"poll-{next(_instances)}"}
        response = client.get(
            CHANNEL_URL + query, headers={**basic(license), **instance, **headers}
        )
        body = response.get_json()
        if response.status_code == 200:
            answers.append((200, body["metadata"]["channel"], body["metadata"]["release"]))
        else:
            answers.append(error_of(response))
    assert answers[0] == answers[1]
    return answers[0]


def change(client, token, body, *, method="patch", subject="acme"):
    response = client.open(
        f"/api/v1/customers/{subject}", method=method.upper(), json=body, headers=bearer(token)
    )
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_an_assigned_channel_replaces_the_license_default(world, token):
    client = world.client
    license = world.license("stable", channels=["stable"])
    assert poll(client, license) == (200, "stable", "1.2.0")
    change(client, token, {"channel": "beta"})
    assert poll(client, world.license("stable", channels=["stable"])) == (200, "beta", "1.2.0")
    # The license's own channel stays readable when asked for.
    assert poll(client, license, "?channel=stable") == (200, "stable", "1.2.0")


def test_extra_channels_may_be_read_besides_the_license_ones(world, token):
    client = world.client
    license = world.license("stable", channels=["stable"])
    assert poll(client, license, "?channel=beta") == (403, "channel_not_allowed")
    change(client, token, {"extraChannels": ["beta"]})
    assert poll(client, license, "?channel=beta") == (200, "beta", "1.2.0")
    assert poll(client, license) == (200, "stable", "1.2.0")
    change(client, token, {"extraChannels": None})
    assert poll(client, license, "?channel=beta") == (403, "channel_not_allowed")


def test_a_pin_serves_that_release_while_the_channel_has_it(world, token):
    client = world.client
    license = world.license()
    # Polled first, so the worker remembers what the channel's selection gave this customer:
    # a pin set afterwards still wins over that memory.
    assert poll(client, license) == (200, "stable", "1.2.0")
    change(client, token, {"pinnedRelease": "1.0.0"})
    assert poll(client, license) == (200, "stable", "1.0.0")
    # A pin wins over what the client runs and over required releases.
    assert poll(client, license, **{"Deployd-Current-Version": "1.1.0"}) == (
        200,
        "stable",
        "1.0.0",
    )
    # A release the channel does not have: the channel is served as usual.
    change(client, token, {"pinnedRelease": "9.9.9"})
    assert poll(client, license) == (200, "stable", "1.2.0")
    change(client, token, {"pinnedRelease": None})
    assert poll(client, license) == (200, "stable", "1.2.0")


def test_a_hold_serves_the_release_the_caller_runs(world, token):
    client = world.client
    license = world.license()
    running = {"Deployd-Current-Version": "1.0.0"}
    assert poll(client, license, **running) == (200, "stable", "1.1.0")  # the required step
    change(client, token, {"hold": True})
    assert poll(client, license, **running) == (200, "stable", "1.0.0")
    # With no release known, or one the channel does not have: served as usual.
    assert poll(client, license) == (200, "stable", "1.2.0")
    assert poll(client, license, **{"Deployd-Current-Version": "0.9.0"}) == (
        200,
        "stable",
        "1.1.0",
    )
    change(client, token, {"hold": False})
    assert poll(client, license, **running) == (200, "stable", "1.1.0")


def test_a_record_of_another_customer_changes_nothing(world, token):
    client = world.client
    change(client, token, {"channel": "beta", "pinnedRelease": "1.0.0"}, subject="globex")
    assert poll(client, world.license()) == (200, "stable", "1.2.0")


def test_put_replaces_patch_merges_delete_removes(world, token):
    client = world.client
    change(client, token, {"channel": "beta", "notes": "big one"}, method="put")
    body = change(client, token, {"hold": True})
    record = body["record"]
    assert (record["channel"], record["hold"], record["notes"]) == ("beta", True, "big one")
    assert (record["updatedBy"], record["subject"]) == ("alice", "acme")
    assert any(sentence.startswith("hold:") for sentence in body["effect"])
    body = change(client, token, {"pinnedRelease": "1.0.0"}, method="put")
    record = body["record"]
    assert (record["channel"], record["hold"], record["notes"]) == (None, False, "")
    shown = client.get(CUSTOMER_URL, headers=bearer(token)).get_json()
    assert shown == body
    body = change(client, token, None, method="delete")
    assert body == {"subject": "acme", "record": None, "effect": []}
    assert client.get(CUSTOMER_URL, headers=bearer(token)).get_json()["record"] is None


def test_the_list_comes_in_pages(world, token):
    client = world.client
    for subject in ("c", "a", "b"):
        change(client, token, {"notes": subject}, subject=subject)
    first = client.get("/api/v1/customers?limit=2", headers=bearer(token)).get_json()
    assert [r["subject"] for r in first["customers"]] == ["a", "b"]
    assert first["next"] == "b"
    rest = client.get("/api/v1/customers?limit=2&after=b", headers=bearer(token)).get_json()
    assert ([r["subject"] for r in rest["customers"]], rest["next"]) == (["c"], None)
    bad = client.get("/api/v1/customers?limit=0", headers=bearer(token))
    assert error_of(bad) == (400, "bad_request")


@pytest.mark.parametrize(
    "body",
    [
        {"channel": "Not A Channel"},
        {"extraChannels": "beta"},
        {"extraChannels": [f"c{n}" for n in range(33)]},
        {"pinnedRelease": "latest"},
        {"hold": "yes"},
        {"notes": "x" * 2001},
        {"color": "blue"},
        ["channel", "beta"],
    ],
)
def test_bad_fields_are_refused_and_change_nothing(world, token, body):
    response = world.client.patch(CUSTOMER_URL, json=body, headers=bearer(token))
    assert error_of(response) == (400, "bad_request")
    assert world.store.customer("acme") is None


def test_reading_needs_a_publisher_token_and_changing_the_customers_scope(world, token):
    client = world.client
    assert error_of(client.get(CUSTOMER_URL))[0] == 401
    assert error_of(client.patch(CUSTOMER_URL, json={"hold": True}))[0] == 401
    publisher = world.publisher_token("bob", scopes=Scopes.of(["publish"], ["*"]))
    assert client.get(CUSTOMER_URL, headers=bearer(publisher)).status_code == 200
    for method in ("PUT", "PATCH", "DELETE"):
        response = client.open(
            CUSTOMER_URL, method=method, json={"hold": True}, headers=bearer(publisher)
        )
        assert error_of(response) == (403, "scope_not_allowed")
    assert world.store.customer("acme") is None
    admin = world.publisher_token("root")
    change(client, admin, {"hold": True})


def test_a_record_written_elsewhere_applies_after_the_background_refresh(world, token):
    # Another worker (or the CLI on Redis) changed the record: this one learns it from its
    # background refresher, within a refresh interval (generous deadline: a busy machine).
    client = world.client
    license = world.license()
    assert poll(client, license) == (200, "stable", "1.2.0")
    other = create_app(world.settings, store=world.store).test_client()
    change(other, token, {"pinnedRelease": "1.0.0"})
    deadline = time.monotonic() + 30
    # One poll at a time: the record may arrive between two.
    while client.get(CHANNEL_URL, headers=basic(license)).json["metadata"]["release"] != "1.0.0":
        assert time.monotonic() < deadline, "the record never reached the other app"
        time.sleep(0.02)


class Faulty(MemoryStore):
    """A memory store whose customer reads can fail (`down`) or hang (`hang` set), as Redis's
    can; `hanging` is set once a read waits."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.hang = threading.Event()
        self.hanging = threading.Event()
        self.failed = 0  # reads refused while down

    def customers_version(self) -> int:
        while self.hang.is_set():
            self.hanging.set()
            time.sleep(0.01)
        if self.down:
            self.failed += 1
            raise StoreUnavailableError("store is down")
        return super().customers_version()


def test_records_keep_applying_while_the_store_fails_or_hangs(tmp_path):
    store = Faulty()
    world = World(tmp_path, store=store)
    store.update_customer("acme", lambda _: CustomerRecord("acme", pinned_release="1.0.0"))
    client = world.client
    license = world.license("stable", channels=["stable"])
    assert poll(client, license) == (200, "stable", "1.0.0")

    store.down = True
    deadline = time.monotonic() + 30
    while store.failed < 2:  # the background thread has found the store down, twice
        assert time.monotonic() < deadline, "the background refresh never ran"
        time.sleep(0.01)
    assert poll(client, license) == (200, "stable", "1.0.0")

    # A hung read holds up the background thread only: polls are answered meanwhile.
    store.down = False
    store.hang.set()
    assert store.hanging.wait(30)
    answers: list = []
    poller = threading.Thread(target=lambda: answers.append(poll(client, license)))
    poller.start()
    poller.join(30)
    store.hang.clear()
    assert answers == [(200, "stable", "1.0.0")]
