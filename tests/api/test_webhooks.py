"""Webhooks from one server process: each event POSTed to each configured URL, signed with the
response-signing key (checked here with the JWKS, as a receiver does), retried after a 5xx with
the same event id, given up (and counted) after its attempts, filtered by type."""

from __future__ import annotations

import time

import pytest

from deployd.client.errors import SpecRefusedError
from deployd.client.verify import verify_spec
from tests.support.factories import CHANNEL_YAML
from tests.support.live import NEXT_RELEASE
from tests.support.publisher_auth import bearer, yaml_body
from tests.support.webhooks import WebhookReceiver, verify_delivery
from tests.support.world import World

WITH_130 = CHANNEL_YAML.format(name="stable") + NEXT_RELEASE


@pytest.fixture
def receiver():
    receiver = WebhookReceiver({"/flaky": [500, 503, 200], "/down": [500], "/gone": [410]})
    yield receiver
    receiver.close()


def serve(tmp_path, receiver, *paths, **settings):
    world = World(
        tmp_path,
        webhook_urls=tuple(receiver.url(path) for path in paths),
        webhook_backoff=0.01,
        **settings,
    )
    return world, world.publisher_token("alice")


@pytest.fixture
def stop_webhooks():
    worlds = []
    yield worlds.append
    for world in worlds:
        world.app.extensions["deployd"].webhooks.stop()


def delivery_state(world, token):
    return world.client.get("/api/v1/events/webhooks", headers=bearer(token)).get_json()


def test_a_delivery_is_signed_with_the_spec_key_and_names_its_event(
    tmp_path, receiver, stop_webhooks
):
    world, token = serve(tmp_path, receiver, "/hook")
    stop_webhooks(world)
    client = world.client
    assert client.put("/api/v1/channels/stable", **yaml_body(WITH_130, token)).status_code == 200
    receiver.wait_for(lambda: receiver.received("/hook"), "the publish event")

    [delivery] = receiver.received("/hook")  # the seed's publishes came before the server
    jwks = client.get("/.well-known/jwks.json").get_json()
    assert verify_delivery(delivery, jwks) == world.app.extensions["deployd"].signer.kid
    event = delivery.event
    assert (event["type"], event["channel"], event["actor"]) == ("publish", "stable", "alice")
    assert delivery.headers["Deployd-Event-Id"] == str(event["id"])
    assert delivery.headers["Deployd-Event-Type"] == "publish"
    assert delivery.headers["Content-Type"] == "application/json"
    listed = client.get("/api/v1/events", headers=bearer(token)).get_json()["events"][0]
    assert event == listed
    receiver.wait_for(lambda: delivery_state(world, token)["counts"]["delivered"] == 1, "count")
    state = delivery_state(world, token)
    assert state["configured"] and state["hosts"] == ["127.0.0.1"]
    assert state["cursor"] == event["id"]


def test_a_failed_delivery_is_retried_with_the_same_event_id(tmp_path, receiver, stop_webhooks):
    world, token = serve(tmp_path, receiver, "/flaky")
    stop_webhooks(world)
    world.client.post("/api/v1/licenses/lic-1/revoke", headers=bearer(token))
    receiver.wait_for(lambda: any(d.status == 200 for d in receiver.deliveries), "a 200")
    attempts = receiver.received("/flaky")
    assert [d.status for d in attempts] == [500, 503, 200]
    assert len({d.headers["Deployd-Event-Id"] for d in attempts}) == 1
    assert len({d.body for d in attempts}) == 1
    receiver.wait_for(lambda: delivery_state(world, token)["counts"]["delivered"] == 1, "count")
    assert delivery_state(world, token)["counts"] == {
        "delivered": 1,
        "failed": 2,
        "gave_up": 0,
        "missed": 0,
    }


def test_a_webhook_that_keeps_failing_is_given_up_counted_and_holds_nothing_back(
    tmp_path, receiver, stop_webhooks
):
    world, token = serve(tmp_path, receiver, "/down", "/gone", "/ok", webhook_attempts=3)
    stop_webhooks(world)
    for n in range(2):
        world.client.post(f"/api/v1/licenses/lic-{n}/revoke", headers=bearer(token))
    receiver.wait_for(lambda: len(receiver.received("/ok")) == 2, "both events at /ok")
    receiver.wait_for(lambda: delivery_state(world, token)["counts"]["delivered"] == 2, "count")
    assert [d.event["data"]["jti"] for d in receiver.received("/ok")] == ["lic-0", "lic-1"]
    assert len(receiver.received("/down")) == 6  # 3 attempts each: a 5xx is tried again
    assert len(receiver.received("/gone")) == 2  # a 410 is final: one attempt each
    assert delivery_state(world, token)["counts"] == {
        "delivered": 2,
        "failed": 8,
        "gave_up": 4,
        "missed": 0,
    }


def test_only_the_configured_event_types_are_sent(tmp_path, receiver, stop_webhooks):
    world, token = serve(tmp_path, receiver, "/hook", webhook_events=("revoke",))
    stop_webhooks(world)
    client = world.client
    assert client.put("/api/v1/channels/stable", **yaml_body(WITH_130, token)).status_code == 200
    client.post("/api/v1/licenses/lic-1/revoke", headers=bearer(token))
    receiver.wait_for(lambda: receiver.received("/hook"), "the revoke event")
    # Events go out in order: once the revocation is sent, the publish before it was passed over.
    assert [d.event["type"] for d in receiver.received("/hook")] == ["revoke"]
    assert delivery_state(world, token)["types"] == ["revoke"]


def test_a_signed_webhook_body_replayed_to_an_agent_is_no_spec(tmp_path, receiver, stop_webhooks):
    world, token = serve(tmp_path, receiver, "/hook")
    stop_webhooks(world)
    assert (
        world.client.put("/api/v1/channels/stable", **yaml_body(WITH_130, token)).status_code == 200
    )
    receiver.wait_for(lambda: receiver.received("/hook"), "the publish event")
    [delivery] = receiver.received("/hook")
    signer = world.app.extensions["deployd"].signer
    with pytest.raises(SpecRefusedError) as refused:
        verify_spec(
            delivery.body,
            delivery.headers["Deployd-Signature"],
            trusted_keys={signer.kid: signer.public_key},
            now=time.time(),
            expected_channel="stable",
        )
    assert "metadata" in str(refused.value)
