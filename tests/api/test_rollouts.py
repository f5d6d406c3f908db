"""Rollouts over HTTP: reports, health, automatic and manual halts, halted selection, history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import fakeredis
import pytest

from deployd.protocol import CURRENT_VERSION_HEADER, INSTANCE_ID_HEADER, REPORT_PATH, SPEC_PATH
from deployd.publishers import Scopes
from deployd.store.redis import RedisStore
from tests.support.factories import CHANNEL_YAML
from tests.support.http import basic, error_of
from tests.support.polling import eventually
from tests.support.publisher_auth import bearer, yaml_body
from tests.support.world import World

# stable with a 1.3.0 that halts after three failures (1.2.0 stays the fallback).
WITH_HALT = (
    CHANNEL_YAML.format(name="stable")
    + """\
  - version: 1.3.0
    chart: {version: 0.13.0}
    halt: {failures: 3}
"""
)
ROLLOUT = "/api/v1/channels/stable/rollout"


@pytest.fixture(params=["memory", "fakeredis"])
def world(request, tmp_path) -> World:
    store = None
    if request.param == "fakeredis":
        store = RedisStore(fakeredis.FakeRedis(server=fakeredis.FakeServer()))
        store.initialize()
    world = World(tmp_path, store=store)
    response = world.client.put(
        "/api/v1/channels/stable", **yaml_body(WITH_HALT, world.publisher_token("root"))
    )
    assert response.status_code == 200, response.get_json()
    return world


def report(world: World, instance_id: str, outcome: str = "applied", **fields):
    body = {"instance": instance_id, "release": "1.3.0", "outcome": outcome, **fields}
    return world.client.post(REPORT_PATH, json=body, headers=basic(world.license()))


def status(world: World) -> dict[str, dict]:
    token = world.publisher_token(f"reader-{len(world.store.publishers())}")
    response = world.client.get(ROLLOUT, headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    return {r["release"]: r for r in response.get_json()["releases"]}


def served(world: World, license: str, current: str | None = None) -> str:
    headers = basic(license)
    if current is not None:
        headers[CURRENT_VERSION_HEADER] = current
    response = world.client.get(SPEC_PATH, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["metadata"]["release"]


def test_a_report_is_accepted_and_counted_by_the_background_flush(world) -> None:
    for instance in ("cluster-a", "cluster-b"):  # both polled first, and were served 1.3.0
        headers = {**basic(world.license()), INSTANCE_ID_HEADER: instance}
        assert world.client.get(SPEC_PATH, headers=headers).status_code == 200
    response = report(world, "cluster-a")
    assert response.status_code == 202
    assert response.get_json() == {"accepted": True, "instance": "cluster-a"}
    assert report(world, "cluster-b", "failed", message="helm upgrade failed").status_code == 202
    eventually(lambda: status(world)["1.3.0"]["failed"] == 1)
    health = status(world)["1.3.0"]
    assert (health["applied"], health["failed"], health["rolledBack"]) == (1, 1, 0)
    eventually(lambda: status(world)["1.3.0"]["served"] == 2)  # once the check-ins are flushed
    assert health["policy"] == {"failures": 3}
    assert health["halted"] is False


def test_an_instance_counts_once_by_its_latest_outcome(world) -> None:
    for outcome in ("failed", "failed", "rolled_back", "applied"):
        assert report(world, "cluster-a", outcome).status_code == 202
    eventually(lambda: status(world)["1.3.0"]["applied"] == 1)
    health = status(world)["1.3.0"]
    assert (health["applied"], health["failed"], health["rolledBack"]) == (1, 0, 0)


NOW = datetime.now(UTC)


@pytest.mark.parametrize(
    ("fields", "status_code", "code"),
    [
        ({"outcome": "exploded"}, 400, "bad_request"),
        ({"release": "9.9.9"}, 404, "unknown_release"),
        ({"instance": ""}, 400, "bad_request"),
        ({"instance": "../../etc/passwd"}, 400, "bad_request"),
        ({"instance": "x" * 129}, 400, "bad_request"),
        ({"message": "m" * 501}, 400, "bad_request"),
        ({"message": 5}, 400, "bad_request"),
        ({"at": "yesterday"}, 400, "bad_request"),
        ({"surprise": 1}, 400, "bad_request"),
        ({"channel": "other"}, 403, "channel_not_allowed"),
        ({"channel": 5}, 400, "bad_request"),
    ],
)
def test_bad_reports_get_a_clear_json_error(world, fields, status_code, code) -> None:
    assert error_of(report(world, "cluster-a", **fields)) == (status_code, code)


@pytest.mark.parametrize("moved", [timedelta(days=-30), timedelta(days=1)])
def test_a_report_dated_far_from_now_is_dropped_and_says_so(world, moved) -> None:
    response = report(world, "cluster-a", at=(datetime.now(UTC) + moved).isoformat())
    assert response.status_code == 202
    body = response.get_json()
    assert body["accepted"] is False and "too far from the server's clock" in body["reason"]
    assert report(world, "cluster-b", "failed").status_code == 202
    eventually(lambda: status(world)["1.3.0"]["failed"] == 1)
    assert status(world)["1.3.0"]["applied"] == 0  # the dropped one never counted


def test_bodies_that_are_no_report_are_refused(world) -> None:
    post = world.client.post
    license = basic(world.license())
    assert error_of(post(REPORT_PATH, data=b"x" * 20_000, headers=license)) == (
        413,
        "payload_too_large",
    )
    assert error_of(post(REPORT_PATH, data=b"[1, 2]", headers=license)) == (400, "bad_request")
    assert error_of(post(REPORT_PATH, data=b"{nope", headers=license)) == (400, "bad_request")
    assert error_of(post(REPORT_PATH, json={"instance": "a"})) == (401, "missing")


def test_a_full_report_queue_refuses_with_a_retry_after(tmp_path) -> None:
    world = World(tmp_path, report_queue_size=1, refresh_interval=3600)
    # Nothing may drain the queue between the two reports: the background thread's first round
    # (started by the first request) would flush it whenever it got there, so it never starts.
    world.app.extensions["deployd"].refresher.stop()
    first = report_on(world, "cluster-a")
    second = report_on(world, "cluster-b")
    assert first.status_code == 202
    assert error_of(second) == (429, "reports_queue_full")
    assert second.headers["Retry-After"] == "5"
    counted = world.client.get("/readyz").get_json()["reports"]
    assert (counted["queued"], counted["accepted"], counted["refused"]) == (1, 1, 1)


def report_on(world: World, instance: str):
    body = {"instance": instance, "release": "1.2.0", "outcome": "applied"}
    return world.client.post(REPORT_PATH, json=body, headers=basic(world.license()))


def test_the_release_halts_by_itself_at_exactly_the_threshold(world) -> None:
    newcomer = world.license(customer="newcomer")
    assert served(world, newcomer) == "1.3.0"
    for instance in ("cluster-a", "cluster-b"):
        assert report(world, instance, "failed").status_code == 202
    eventually(lambda: status(world)["1.3.0"]["failed"] == 2)
    assert status(world)["1.3.0"]["halted"] is False  # one report short
    assert served(world, newcomer) == "1.3.0"

    assert report(world, "cluster-c", "rolled_back").status_code == 202
    eventually(lambda: status(world)["1.3.0"]["halted"])
    halt = status(world)["1.3.0"]["halt"]
    assert halt["by"] == "policy"
    assert halt["numbers"]["failed"] == 2 and halt["numbers"]["rolledBack"] == 1
    assert halt["numbers"]["policy"] == {"failures": 3}
    # New instances get the newest release that is not halted; one on 1.3.0 keeps it. (The
    # probe says which release it runs, so its polls while the worker's view catches up with
    # the halt change nothing the server knows of the others.)
    probe = world.license(customer="probe")
    eventually(lambda: served(world, probe, current="1.1.0") == "1.2.0")
    assert served(world, probe, current="1.3.0") == "1.3.0"
    assert served(world, world.license(customer="late")) == "1.2.0"  # a new instance
    assert served(world, newcomer) == "1.3.0"  # it was served 1.3.0 before the halt: it stays
    # More failures do not halt it again.
    assert report(world, "cluster-d", "failed").status_code == 202
    eventually(lambda: status(world)["1.3.0"]["failed"] == 3)
    events = [e for e in history(world) if "event" in e]
    assert [e["event"] for e in events] == ["halt"]


def test_a_halt_survives_a_later_publish_until_resumed(world) -> None:
    token = world.publisher_token("ops")
    halted = world.client.post(
        ROLLOUT + "/releases/1.3.0/halt", json={"reason": "bad image"}, headers=bearer(token)
    )
    assert halted.status_code == 200
    assert halted.get_json()["changed"] is True and halted.get_json()["halted"] is True
    again = world.client.post(ROLLOUT + "/releases/1.3.0/halt", headers=bearer(token))
    assert again.get_json()["changed"] is False
    republished = world.client.put(
        "/api/v1/channels/stable", **yaml_body(WITH_HALT.replace("Test", "New"), token)
    )
    assert republished.status_code == 200
    newcomer = world.license(customer="newcomer")
    eventually(lambda: served(world, newcomer) == "1.2.0")
    resumed = world.client.post(ROLLOUT + "/releases/1.3.0/resume", headers=bearer(token))
    assert resumed.get_json()["changed"] is True and resumed.get_json()["halted"] is False
    eventually(lambda: served(world, newcomer) == "1.3.0")

    entries = history(world)
    kinds = [e.get("event", "publish") for e in entries]
    assert kinds == ["resume", "publish", "halt", "publish", "publish"]  # newest first
    assert [e["sequence"] for e in entries if "sequence" in e] == [3, 2, 1]
    halt = entries[2]
    assert (halt["by"], halt["reason"], halt["release"]) == ("ops", "bad image", "1.3.0")
    assert set(halt["numbers"]) >= {"served", "applied", "failed", "failureRate", "policy"}


def history(world: World) -> list[dict]:
    token = world.publisher_token(f"h-{len(world.store.publishers())}")
    response = world.client.get("/api/v1/channels/stable/history", headers=bearer(token))
    return response.get_json()["history"]


def test_halting_needs_the_rollout_scope_on_the_channel(world) -> None:
    reader = world.publisher_token("ci", scopes=Scopes.of(["publish"], ["stable"]))
    other = world.publisher_token("beta-ops", scopes=Scopes.of(["rollout"], ["beta"]))
    ops = world.publisher_token("ops", scopes=Scopes.of(["rollout"], ["stable"]))
    path = ROLLOUT + "/releases/1.3.0/halt"
    assert error_of(world.client.post(path, headers=bearer(reader))) == (403, "scope_not_allowed")
    assert error_of(world.client.post(path, headers=bearer(other))) == (403, "scope_not_allowed")
    assert error_of(world.client.post(path)) == (401, "publisher_unauthorized")
    assert error_of(world.client.post(path, headers=basic(world.license()))) == (
        401,
        "publisher_unauthorized",
    )
    assert world.client.get(ROLLOUT, headers=bearer(reader)).status_code == 200
    assert world.client.post(path, headers=bearer(ops)).status_code == 200


def test_unknown_channels_and_releases_are_404(world) -> None:
    token = bearer(world.publisher_token("ops"))
    assert error_of(world.client.get("/api/v1/channels/nope/rollout", headers=token)) == (
        404,
        "unknown_channel",
    )
    missing = world.client.post(ROLLOUT + "/releases/9.9.9/halt", headers=token)
    assert error_of(missing) == (404, "unknown_release")


def test_halts_and_resumes_are_events_without_the_typed_reason(world) -> None:
    for instance in ("cluster-a", "cluster-b", "cluster-c"):
        assert report(world, instance, "failed").status_code == 202
    eventually(lambda: status(world)["1.3.0"]["halted"])
    token = world.publisher_token("ops")
    path = ROLLOUT + "/releases/1.3.0/"
    assert world.client.post(path + "resume", headers=bearer(token)).status_code == 200
    halted = world.client.post(path + "halt", json={"reason": "ask Ana"}, headers=bearer(token))
    assert halted.status_code == 200
    answer = world.client.get(
        "/api/v1/events", query_string={"channel": "stable"}, headers=bearer(token)
    )
    events = [e for e in answer.get_json()["events"] if e["type"] in ("halt", "resume")]
    manual, resumed, automatic = events  # newest first
    assert (automatic["type"], automatic["actor"]) == ("halt", "deployd")
    assert automatic["data"]["automatic"] is True and automatic["data"]["failed"] == 3
    assert "failures: 3" in automatic["data"]["reason"]
    assert (resumed["type"], resumed["actor"]) == ("resume", "ops")
    assert (manual["type"], manual["actor"], manual["data"]["release"]) == ("halt", "ops", "1.3.0")
    assert "ask Ana" not in str(answer.get_json())
