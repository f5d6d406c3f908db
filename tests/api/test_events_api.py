"""The event log over HTTP: every change the API makes is an event naming who made it; reads
filter and page; the log keeps its bound; a store that fails to record never fails the change.
On the memory store, Redis on fakeredis and a real redis-server."""

from __future__ import annotations

import pytest

from deployd.errors import StoreUnavailableError
from deployd.server.app import create_app
from deployd.store import EventRecord
from deployd.store.memory import MemoryStore
from tests.support.backends import BACKENDS, open_backend
from tests.support.factories import CHANNEL_YAML
from tests.support.http import basic, error_of
from tests.support.live import NEXT_RELEASE
from tests.support.publisher_auth import bearer, yaml_body
from tests.support.world import World

WITH_130 = CHANNEL_YAML.format(name="stable") + NEXT_RELEASE


@pytest.fixture(params=BACKENDS)
def backend(request):
    yield from open_backend(request)


@pytest.fixture
def world(tmp_path, backend):
    return World(tmp_path, store=backend)


@pytest.fixture
def token(world):
    return world.publisher_token("alice")


def events(client, token, **params):
    response = client.get("/api/v1/events", query_string=params, headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def publish(client, token, text=WITH_130, name="stable"):
    response = client.put(f"/api/v1/channels/{name}", **yaml_body(text, token))
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def test_publish_rollback_promote_and_revoke_are_events_naming_who(world, token):
    client = world.client
    before = events(client, token, limit=1)["events"][0]["id"]  # the seed's publishes
    publish(client, token)
    for path, body in (
        ("/api/v1/channels/beta/promote", {"from": "stable", "version": "1.3.0"}),
        ("/api/v1/channels/stable/rollback", {"sequence": 1}),
        ("/api/v1/licenses/lic-123/revoke", {"reason": "churned"}),
    ):
        response = client.post(path, json=body, headers=bearer(token))
        assert response.status_code == 200, response.get_json()
    # revoking again is no change, and no event
    client.post("/api/v1/licenses/lic-123/revoke", headers=bearer(token))

    found = events(client, token, after=before)["events"]
    assert [(e["type"], e["channel"], e["actor"]) for e in found] == [
        ("publish", "stable", "alice"),
        ("promote", "beta", "alice"),
        ("rollback", "stable", "alice"),
        ("revoke", None, "alice"),
    ]
    assert found[0]["data"] == {"sequence": 2, "summary": "added 1.3.0"}
    assert found[1]["data"]["from"] == "stable" and found[1]["data"]["version"] == "1.3.0"
    assert found[2]["data"]["to"] == 1 and found[2]["data"]["sequence"] == 3
    assert found[3]["data"] == {"jti": "lic-123"}  # the reason is free text: not in the event
    assert [e["id"] for e in found] == list(range(before + 1, before + 5))
    assert all(e["at"].endswith("Z") for e in found)


def test_a_publish_that_changes_nothing_is_no_event(world, token):
    newest = events(world.client, token, limit=1)["events"][0]["id"]
    publish(world.client, token, CHANNEL_YAML.format(name="stable"))  # the seeded document
    assert events(world.client, token, after=newest)["events"] == []


def test_events_filter_by_type_channel_and_subject(world, token):
    client = world.client
    publish(client, token)
    client.post("/api/v1/licenses/lic-1/revoke", headers=bearer(token))
    publishes = events(client, token, type="publish")["events"]
    assert {e["type"] for e in publishes} == {"publish"}
    assert [e["channel"] for e in publishes] == ["stable", "stable", "beta"]  # newest first
    assert [
        e["channel"] for e in events(client, token, type="publish", channel="beta")["events"]
    ] == ["beta"]
    several = events(client, token, type="publish,revoke", channel="stable")["events"]
    assert [e["type"] for e in several] == ["publish", "publish"]
    assert events(client, token, subject="acme")["events"] == []


def test_pages_go_back_with_next_before_and_tail_with_next_after(world, token):
    client = world.client
    for n in range(4):
        client.post(f"/api/v1/licenses/lic-{n}/revoke", headers=bearer(token))
    newest = events(client, token, limit=2)
    ids = [e["id"] for e in newest["events"]]
    assert ids == [6, 5]  # two seed publishes, then four revocations
    older = events(client, token, limit=2, before=newest["nextBefore"])
    assert [e["id"] for e in older["events"]] == [4, 3]
    last = events(client, token, limit=2, before=older["nextBefore"])
    assert [e["id"] for e in last["events"]] == [2, 1] and last["nextBefore"] is None

    tail = events(client, token, after=4)
    assert [e["id"] for e in tail["events"]] == [5, 6] and tail["nextAfter"] == 6
    assert events(client, token, after=tail["nextAfter"])["events"] == []
    client.post("/api/v1/licenses/lic-9/revoke", headers=bearer(token))
    assert [e["id"] for e in events(client, token, after=6)["events"]] == [7]


def test_the_log_keeps_only_the_newest_events_max(tmp_path, backend):
    world = World(tmp_path, store=backend, events_max=3)
    token = world.publisher_token()
    for n in range(5):
        world.client.post(f"/api/v1/licenses/lic-{n}/revoke", headers=bearer(token))
    found = events(world.client, token, limit=50)["events"]
    assert [e["data"]["jti"] for e in found] == ["lic-4", "lic-3", "lic-2"]


def test_reading_events_needs_a_publisher_token(world):
    client = world.client
    assert error_of(client.get("/api/v1/events")) == (401, "publisher_unauthorized")
    assert error_of(client.get("/api/v1/events", headers=basic(world.license())))[0] == 401
    assert error_of(client.get("/api/v1/events/webhooks"))[0] == 401


@pytest.mark.parametrize(
    "params",
    [
        {"type": "nonsense"},
        {"after": "-1"},
        {"after": "x"},
        {"before": "0"},
        {"limit": "0"},
        {"limit": "501"},
        {"after": "1", "before": "5"},
        {"channel": "c" * 201},
    ],
)
def test_bad_queries_are_a_json_400(world, token, params):
    response = world.client.get("/api/v1/events", query_string=params, headers=bearer(token))
    assert error_of(response) == (400, "bad_request")


class FailingEventsStore(MemoryStore):
    """A store whose event log is down while the rest works."""

    def append_event(self, event, *, keep):
        raise StoreUnavailableError("the event log is unreachable")


def test_a_store_that_cannot_record_the_event_still_publishes_and_counts_it(tmp_path):
    world = World(tmp_path, store=FailingEventsStore())
    token = world.publisher_token()
    client = world.client
    failures = client.get("/api/v1/events/webhooks", headers=bearer(token)).get_json()[
        "recordingFailures"
    ]
    assert publish(client, token)["sequence"] == 2
    assert client.post("/api/v1/licenses/lic-1/revoke", headers=bearer(token)).status_code == 200
    state = client.get("/api/v1/events/webhooks", headers=bearer(token)).get_json()
    assert state["recordingFailures"] == failures + 2
    assert state["configured"] is False


def test_events_never_carry_the_reason_a_publisher_typed(tmp_path):
    world = World(tmp_path)
    token = world.publisher_token()
    license = world.license()
    app = create_app(world.settings, store=world.store)
    client = app.test_client()
    client.post("/api/v1/licenses/lic-7/revoke", json={"reason": license}, headers=bearer(token))
    body = client.get("/api/v1/events", headers=bearer(token)).get_data(as_text=True)
    assert license not in body and "lic-7" in body


def test_since_keeps_events_recorded_at_or_after_a_time(world, token):
    for at in ("2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z", "2026-06-01T10:00:00Z"):
        world.store.append_event(
            EventRecord(0, "halt", at, "deployd", "stable", None, {}), keep=100
        )
    found = events(world.client, token, type="halt", since="2026-06-01T11:00:00+01:00")
    assert [e["at"] for e in found["events"]] == ["2026-06-01T10:00:00Z"]
    assert (
        len(events(world.client, token, type="halt", since="2025-12-31T23:00:00Z")["events"]) == 3
    )
    response = world.client.get(
        "/api/v1/events", query_string={"since": "yesterday"}, headers=bearer(token)
    )
    assert error_of(response) == (400, "bad_request")


def test_customer_changes_are_events_without_the_notes(world, token):
    client = world.client
    body = {"channel": "beta", "hold": True, "notes": "call Ana before upgrading"}
    response = client.put("/api/v1/customers/acme", json=body, headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    assert client.delete("/api/v1/customers/acme", headers=bearer(token)).status_code == 200
    cleared, changed = events(client, token, type="customer")["events"][:2]
    assert (changed["subject"], changed["actor"]) == ("acme", "alice")
    assert changed["data"]["channel"] == "beta" and changed["data"]["hold"] is True
    assert "notes" not in changed["data"]
    assert "call Ana" not in str(events(client, token))
    assert (cleared["subject"], cleared["data"]) == ("acme", {"cleared": True})
