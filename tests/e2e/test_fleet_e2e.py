"""End to end: the fleet on gunicorn with several workers and a real Redis. An unmodified W&B
operator (GET, Basic auth, nothing else) steps through a required release though its polls land on
different workers; agents polling any worker are one fleet; maxInstances holds across workers."""

from __future__ import annotations

import pytest
import requests

from deployd.channels import parse_channel_text
from deployd.fleet.instances import derived_instance_key, instance_key
from deployd.publishing import publish_channel
from tests.support.gunicorn import GunicornServer, redis_setup
from tests.support.polling import eventually
from tests.support.publisher_auth import add_publisher

pytestmark = pytest.mark.e2e

SPEC = "/api/v1/operator/channel"
OPERATOR_UA = "Go-http-client/1.1"
WORKERS = 3
# Answers in a row from fresh connections that must all show a fact before a test relies on
# every worker knowing it (connections land on workers at random: 3 workers, 30 answers).
IN_A_ROW = 30


def fleet_yaml(*releases: tuple[str, bool]) -> str:
    lines = [
        f"  - {{version: {v}, chart: {{version: 0.1.0}}{', required: true' if r else ''}}}"
        for v, r in releases
    ]
    return "name: fleet\nchart: {url: https://charts.example.com, name: server}\nreleases:\n" + (
        "\n".join(lines) + "\n"
    )


@pytest.fixture
def served(tmp_path, real_redis, redis_server):
    setup = redis_setup(tmp_path, redis_server.url)
    env = {**setup.env, "DEPLOYD_REFRESH_INTERVAL": "0.2", "DEPLOYD_RATE_LIMIT": "0"}
    server = GunicornServer(env, workers=WORKERS)
    server.start(tmp_path)
    try:
        yield server, setup.kit, setup.store
    finally:
        server.stop()


def publish(store, text: str) -> int:
    channel = parse_channel_text(text, filename="fleet.yaml")
    return publish_channel(store, channel, source=text, publisher="e2e").record.sequence


def every_worker_knows(server: GunicornServer, instances: int) -> None:
    """Wait until IN_A_ROW readiness answers in a row say their worker knows `instances`."""
    row = 0

    def seen() -> bool:
        nonlocal row
        report = requests.get(server.url + "/readyz", timeout=10).json()
        row = row + 1 if report["fleet"]["instances"] >= instances else 0
        return row >= IN_A_ROW

    eventually(seen)


def test_an_unmodified_operator_steps_through_a_required_release_across_workers(served):
    server, kit, store = served
    publish(store, fleet_yaml(("1.0.0", False)))
    license = kit.issue(channel="fleet", channels=["fleet"])

    def operator_poll() -> dict:
        # A new connection each time, so the polls spread over the workers.
        response = requests.get(
            server.url + SPEC,
            auth=("license", license),
            headers={"User-Agent": OPERATOR_UA},
            timeout=10,
        )
        assert response.status_code in (200, 404), response.text  # 404: channel not seen yet
        return response.json().get("metadata", {})

    eventually(lambda: operator_poll().get("release") == "1.0.0")
    key = derived_instance_key("acme", OPERATOR_UA)
    eventually(lambda: store.instance(key) is not None)
    every_worker_knows(server, 1)
    sequence = publish(store, fleet_yaml(("1.0.0", False), ("1.2.0", True), ("1.4.0", False)))
    answers: list[str] = []

    def stepped() -> bool:
        metadata = operator_poll()
        assert metadata, "the channel was served before: it cannot be unknown now"
        if metadata["sequence"] == str(sequence):
            answers.append(metadata["release"])
        return answers[-1:] == ["1.4.0"]

    eventually(stepped)
    # Never straight to 1.4.0: the required 1.2.0 first (maybe more than once, from workers
    # that had not yet heard it was served), then 1.4.0.
    assert answers[0] == "1.2.0" and set(answers[:-1]) == {"1.2.0"}, answers


def test_agents_on_every_worker_are_one_fleet_and_max_instances_holds(served):
    server, kit, store = served
    token = add_publisher(store, "e2e")
    capped = kit.issue(channel="stable", customer="capped", maxInstances=3)
    free = kit.issue(channel="stable", customer="free")

    def poll(license: str, instance: str) -> requests.Response:
        return requests.get(
            server.url + SPEC,
            auth=("license", license),
            headers={"Deployd-Instance-Id": instance, "Deployd-Kubernetes-Version": "v1.30.1"},
            timeout=10,
        )

    for _ in range(3):
        for n in range(8):
            assert poll(free, f"free-{n}").status_code == 200
        for n in range(3):
            assert poll(capped, f"capped-{n}").status_code == 200
    auth = {"Authorization": f"Bearer {token}"}

    def fleet(query: str) -> list[dict]:
        response = requests.get(server.url + "/api/v1/fleet" + query, headers=auth, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["instances"]

    eventually(lambda: len(fleet("")) == 11)
    assert {i["agentInstanceId"] for i in fleet("?customer=capped")} == {
        "capped-0",
        "capped-1",
        "capped-2",
    }
    assert store.instance(instance_key("free", "free-0")).kubernetes_version == "v1.30.1"
    adoption = requests.get(
        server.url + "/api/v1/channels/stable/adoption", headers=auth, timeout=10
    ).json()
    assert adoption["current"] == {"1.2.0": 11}
    # Every worker knows the capped customer's three: a fourth is refused on any of them, the
    # three keep working.
    every_worker_knows(server, 11)
    for _ in range(IN_A_ROW):
        refused = poll(capped, "capped-3")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "instance_limit"
    assert all(poll(capped, f"capped-{n}").status_code == 200 for n in range(3))
