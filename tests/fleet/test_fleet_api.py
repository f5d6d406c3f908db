"""The fleet loop through Flask's test client, on memory, fakeredis and a real Redis: instances
check in, an operator that sends no current version steps through required releases, maxInstances,
and the read APIs."""

from __future__ import annotations

import time

import fakeredis
import pytest

from deployd.channels import parse_channel_text
from deployd.fleet.instances import derived_instance_key, instance_key
from deployd.protocol import rfc3339
from deployd.publishing import publish_channel
from deployd.store.memory import MemoryStore
from deployd.store.redis import RedisStore
from tests.support.http import CHANNEL_URL, basic, error_of
from tests.support.polling import eventually
from tests.support.world import World

FLEET_YAML = """\
name: fleet
chart: {{url: https://charts.example.com, name: server}}
releases:
{releases}
"""
RELEASE = "  - {{version: {version}, chart: {{version: 0.1.0}}{extra}}}\n"
OPERATOR_UA = "Go-http-client/1.1"


def fleet_channel(*releases: tuple[str, bool]) -> str:
    items = "".join(
        RELEASE.format(version=v, extra=", required: true" if required else "")
        for v, required in releases
    )
    return FLEET_YAML.format(releases=items.rstrip("\n"))


@pytest.fixture(
    params=["memory", "fakeredis", pytest.param("redis", marks=pytest.mark.redis_server)]
)
def world(request, tmp_path):
    if request.param == "memory":
        store = MemoryStore()
    elif request.param == "fakeredis":
        store = RedisStore(fakeredis.FakeRedis(server=fakeredis.FakeServer()))
        store.initialize()
    else:
        store = RedisStore(request.getfixturevalue("real_redis"))
    world = World(tmp_path, store=store, instance_ttl_seconds=3600)
    yield world
    # The app's background refresher must not outlive the test: on the session's real Redis it
    # would go on writing into the next test's store.
    if "app" in vars(world):
        refresher = world.app.extensions["deployd"].refresher
        if refresher is not None:
            refresher.stop()


def publish(world: World, text: str) -> int:
    channel = parse_channel_text(text, filename="fleet.yaml")
    return publish_channel(world.store, channel, source=text, publisher="test").record.sequence


def operator_poll(client, license: str):
    """What an unmodified W&B operator sends: GET, Basic auth, its user agent, nothing else."""
    return client.get(CHANNEL_URL, headers={**basic(license), "User-Agent": OPERATOR_UA})


def served(response) -> str:
    assert response.status_code == 200, response.get_json()
    return response.get_json()["metadata"]["release"]


def test_an_operator_without_current_version_steps_through_required_releases(world):
    publish(world, fleet_channel(("1.0.0", False)))
    license = world.license(channel="fleet", channels=["fleet"])
    client = world.client
    eventually(lambda: operator_poll(client, license).status_code == 200)
    assert served(operator_poll(client, license)) == "1.0.0"
    sequence = publish(world, fleet_channel(("1.0.0", False), ("1.2.0", True), ("1.4.0", False)))
    answers: list[dict] = []

    def polled_the_new_sequence() -> bool:
        answers.append(operator_poll(client, license).get_json()["metadata"])
        return answers[-1]["sequence"] == str(sequence)

    eventually(polled_the_new_sequence)
    # The server knew the instance was served 1.0.0: the required 1.2.0 first, then 1.4.0.
    assert answers[-1]["release"] == "1.2.0"
    assert served(operator_poll(client, license)) == "1.4.0"
    assert served(operator_poll(client, license)) == "1.4.0"


def test_the_current_version_header_still_wins(world):
    publish(world, fleet_channel(("1.0.0", False), ("1.2.0", True), ("1.4.0", False)))
    license = world.license(channel="fleet", channels=["fleet"])
    client = world.client
    eventually(lambda: operator_poll(client, license).status_code == 200)
    headers = {**basic(license), "Deployd-Current-Version": "1.0.0"}
    assert served(client.get(CHANNEL_URL, headers=headers)) == "1.2.0"


def test_the_first_poll_of_an_unknown_instance_gets_the_newest_release(world):
    publish(world, fleet_channel(("1.0.0", False), ("1.2.0", True), ("1.4.0", False)))
    license = world.license(channel="fleet", channels=["fleet"])
    eventually(lambda: operator_poll(world.client, license).status_code == 200)
    assert served(operator_poll(world.client, license)) == "1.4.0"


def test_check_ins_reach_the_store_keyed_without_license_text(world):
    license = world.license()
    client = world.client
    headers = {
        **basic(license),
        "Deployd-Instance-Id": "cluster-a",
        "Deployd-Agent-Version": "0.1.0",
        "Deployd-Kubernetes-Version": "v1.29.4",
    }
    assert client.get(CHANNEL_URL, headers=headers).status_code == 200
    assert operator_poll(client, license).status_code == 200
    agent = instance_key("acme", "cluster-a")
    operator = derived_instance_key("acme", OPERATOR_UA)
    eventually(lambda: world.store.instance(agent) and world.store.instance(operator))
    record = world.store.instance(agent)
    assert (record.agent_id, record.agent_version, record.kubernetes_version) == (
        "cluster-a",
        "0.1.0",
        "v1.29.4",
    )
    assert (record.subject, record.channel, record.served) == ("acme", "stable", "1.2.0")
    assert world.store.instance(operator).user_agent == OPERATOR_UA
    assert license not in record.to_json() + world.store.instance(operator).to_json()


def test_repeat_polls_within_a_minute_are_recorded_once(world):
    license = world.license()
    client = world.client
    fleet = world.app.extensions["deployd"].fleet
    for _ in range(3):
        assert poll_as(client, license, "a").status_code == 200
        # Each poll's check-in, if one was noted, is flushed before the next poll.
        eventually(
            lambda: fleet.report()["recorded"] >= 1 and fleet.report()["pendingCheckIns"] == 0
        )
    assert fleet.report()["recorded"] == 1


@pytest.mark.parametrize("bad", [" x", "a" * 65, "has space", "semi;colon", "ü", "-leading-dash"])
def test_a_malformed_instance_id_is_a_json_400(world, bad):
    license = world.license()
    client = world.client
    assert client.get(CHANNEL_URL, headers=basic(license)).status_code == 200  # warm: fast path
    headers = {**basic(license), "Deployd-Instance-Id": bad}
    assert error_of(client.get(CHANNEL_URL, headers=headers)) == (400, "bad_instance_header")


def test_an_empty_instance_id_is_no_instance_id(world):
    license = world.license()
    headers = {**basic(license), "Deployd-Instance-Id": "", "User-Agent": OPERATOR_UA}
    assert world.client.get(CHANNEL_URL, headers=headers).status_code == 200
    derived = derived_instance_key("acme", OPERATOR_UA)
    eventually(lambda: world.store.instance(derived))


def test_a_malformed_version_header_is_a_json_400(world):
    license = world.license()
    headers = {**basic(license), "Deployd-Kubernetes-Version": "v1.29 (gke)"}
    assert error_of(world.client.get(CHANNEL_URL, headers=headers)) == (
        400,
        "bad_instance_header",
    )


def poll_as(client, license: str, instance: str):
    return client.get(CHANNEL_URL, headers={**basic(license), "Deployd-Instance-Id": instance})


def test_a_new_instance_past_max_instances_is_refused(world):
    license = world.license(maxInstances=2)
    client = world.client
    assert poll_as(client, license, "a").status_code == 200
    assert poll_as(client, license, "b").status_code == 200
    assert error_of(poll_as(client, license, "c")) == (403, "instance_limit")
    # The existing ones keep working, on the fast path too; another customer is not counted.
    assert poll_as(client, license, "a").status_code == 200
    assert poll_as(client, license, "b").status_code == 200
    other = world.license(customer="globex", maxInstances=2)
    assert poll_as(client, other, "c").status_code == 200


def test_an_expired_instance_frees_its_slot(tmp_path):
    world = World(tmp_path, instance_ttl_seconds=1, rate_limit_enabled=False)
    license = world.license(maxInstances=1)
    client = world.client
    assert poll_as(client, license, "a").status_code == 200
    assert error_of(poll_as(client, license, "b")) == (403, "instance_limit")
    # "a" stops polling; once it is older than the TTL the sweep removes it and "b" gets in.
    eventually(lambda: poll_as(client, license, "b").status_code == 200)
    assert world.store.instance(instance_key("acme", "a")) is None


def fleet_get(world: World, path: str, token: str | None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return world.client.get(path, headers=headers)


def test_the_fleet_api_lists_and_filters_instances(world):
    token = world.publisher_token()
    client = world.client
    acme, globex = world.license(), world.license(customer="globex", channel="beta")
    for n in range(3):
        assert poll_as(client, acme, f"acme-{n}").status_code == 200
    assert poll_as(client, globex, "globex-0").status_code == 200

    def listed(query: str = "") -> list[str]:
        body = fleet_get(world, "/api/v1/fleet" + query, token).get_json()
        return sorted(i["agentInstanceId"] for i in body["instances"])

    eventually(lambda: len(listed()) == 4)
    assert listed("?customer=globex") == ["globex-0"]
    assert listed("?channel=stable") == ["acme-0", "acme-1", "acme-2"]
    assert listed("?release=1.2.0&channel=beta") == ["globex-0"]
    assert listed("?seenSince=2000-01-01T00:00:00Z&seenBefore=2001-01-01T00:00:00Z") == []
    assert listed("?behind=1") == []
    pages, cursor = [], ""
    while True:
        body = fleet_get(world, f"/api/v1/fleet?limit=3{cursor}", token).get_json()
        pages.append(len(body["instances"]))
        if body["cursor"] is None:
            break
        cursor = "&cursor=" + body["cursor"]
    assert sum(pages) == 4 and pages[0] == 3


def test_behind_counts_releases_from_the_newest(world):
    token = world.publisher_token()
    license = world.license()
    headers = {**basic(license), "Deployd-Instance-Id": "old", "Deployd-Current-Version": "1.0.0"}
    assert world.client.get(CHANNEL_URL, headers=headers).get_json()["metadata"]["release"] == (
        "1.1.0"
    )
    eventually(lambda: world.store.instance(instance_key("acme", "old")))
    body = fleet_get(world, "/api/v1/fleet?behind=1", token).get_json()
    assert [i["agentInstanceId"] for i in body["instances"]] == ["old"]
    assert fleet_get(world, "/api/v1/fleet?behind=2", token).get_json()["instances"] == []


def test_adoption_has_the_live_counts_and_hourly_points(world):
    token = world.publisher_token()
    license = world.license()
    assert poll_as(world.client, license, "a").status_code == 200
    eventually(
        lambda: (
            fleet_get(world, "/api/v1/channels/stable/adoption", token).get_json()["current"]
            == {"1.2.0": 1}
        )
    )
    # The hourly point as the worker that takes an hour's lock writes it (here: the last hour).
    hour = int(time.time() // 3600) - 1
    world.store.snapshot_adoption(hour, keep_hours=192)
    body = fleet_get(world, "/api/v1/channels/stable/adoption?hours=24", token).get_json()
    assert body["channel"] == "stable"
    assert {"at": rfc3339(hour * 3600), "instances": {"1.2.0": 1}} in body["points"]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/fleet?cursor=nope", 400, "bad_cursor"),
        ("/api/v1/fleet?limit=0", 400, "bad_query"),
        ("/api/v1/fleet?limit=501", 400, "bad_query"),
        ("/api/v1/fleet?behind=x", 400, "bad_query"),
        ("/api/v1/fleet?seenSince=yesterday", 400, "bad_query"),
        ("/api/v1/channels/stable/adoption?hours=9999", 400, "bad_query"),
        ("/api/v1/channels/nope/adoption", 404, "unknown_channel"),
    ],
)
def test_bad_fleet_queries_are_json_errors(world, path, status, code):
    assert error_of(fleet_get(world, path, world.publisher_token())) == (status, code)


@pytest.mark.parametrize("path", ["/api/v1/fleet", "/api/v1/channels/stable/adoption"])
def test_the_fleet_apis_need_a_publisher_token(world, path):
    assert error_of(fleet_get(world, path, None))[0] == 401
    assert error_of(fleet_get(world, path, world.license()))[0] == 401


def test_an_instance_seen_for_the_first_time_is_an_event(world):
    client = world.client
    headers = {**basic(world.license()), "Deployd-Instance-Id": "cluster-a"}
    for _ in range(3):
        assert client.get(CHANNEL_URL, headers=headers).status_code == 200
    token = world.publisher_token("alice")

    def instance_events() -> list:
        answer = client.get(
            "/api/v1/events",
            query_string={"type": "instance"},
            headers={"Authorization": f"Bearer {token}"},
        )
        return answer.get_json()["events"]

    eventually(instance_events)
    (event,) = instance_events()  # three polls, one instance, one event
    assert (event["actor"], event["subject"], event["channel"]) == ("deployd", "acme", "stable")
    assert event["data"] == {
        "instance": instance_key("acme", "cluster-a"),
        "release": "1.2.0",
        "agentInstanceId": "cluster-a",
    }
