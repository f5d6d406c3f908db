"""End to end on highly available Redis: gunicorn on a Sentinel URL through a failover (the
primary SIGKILLed), and gunicorn on a three-primary Redis Cluster (tests/support/redis_ha.py).

The Sentinel test prints its timings (run with -s): when publishing first answered 503 after the
kill, when the sentinels had promoted the replica, and when publishing worked again.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest
import requests

from deployd.fleet.instances import instance_key
from deployd.protocol import INSTANCE_ID_HEADER
from deployd.publishers import new_token, token_hash
from deployd.store.redis import RedisStore
from tests.support.factories import CHANNEL_YAML
from tests.support.gunicorn import GunicornServer, redis_setup
from tests.support.polling import eventually
from tests.support.redis_ha import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.redis_server]

SPEC = "/api/v1/operator/channel"
POLLERS = 3


def channel_text(patch: int) -> str:
    """Channel `stable` with one more release, 1.3.<patch>: every publish a new document."""
    return CHANNEL_YAML.format(name="stable") + (
        f"  - version: 1.3.{patch}\n    chart: {{version: 0.13.{patch}}}\n"
    )


@dataclass
class Traffic:
    """Pollers and one publisher hitting a server in threads, recording every answer."""

    url: str
    license: str
    token: str
    polls: list[int] = field(default_factory=list)
    poll_errors: list[str] = field(default_factory=list)
    # (when, status, sequence or error code, the release published)
    publishes: list[tuple[float, int, str, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self.threads = [threading.Thread(target=self._poll) for _ in range(POLLERS)]
        self.threads.append(threading.Thread(target=self._publish))
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)
        assert not any(t.is_alive() for t in self.threads)

    def _poll(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                try:
                    response = session.get(
                        self.url + SPEC, auth=("license", self.license), timeout=30
                    )
                    self.polls.append(response.status_code)
                except requests.RequestException as e:
                    self.poll_errors.append(repr(e))
                time.sleep(0.02)

    def _publish(self) -> None:
        patch = 0
        with requests.Session() as session:
            while not self.stop.is_set():
                patch += 1
                response = session.put(
                    self.url + "/api/v1/channels/stable",
                    data=channel_text(patch).encode(),
                    headers={
                        "Content-Type": "application/yaml",
                        "Authorization": f"Bearer {self.token}",
                    },
                    timeout=30,
                )
                body = response.json()
                outcome = str(body["sequence"]) if response.ok else body["error"]["code"]
                self.publishes.append(
                    (time.monotonic(), response.status_code, outcome, f"1.3.{patch}")
                )
                time.sleep(0.05)

    def acknowledged(self) -> list[tuple[int, str]]:
        """(sequence, release) of every publish that was answered as done."""
        return [
            (int(o), release) for _, status, o, release in self.publishes if status in (200, 201)
        ]

    def first(self, statuses: tuple[int, ...], after: float) -> float:
        """When the first publish after `after` answered one of `statuses` (waits for one)."""
        found = wait_until(
            lambda: next((t for t, s, _, _ in self.publishes if t > after and s in statuses), None),
            f"a publish answering {statuses}",
            timeout=120,
        )
        return float(found)  # type: ignore[arg-type]


def test_a_sentinel_failover_keeps_polls_answered_and_loses_no_acknowledged_publish(
    tmp_path, sentinels
):
    setup = redis_setup(tmp_path, sentinels.url)
    token = new_token()
    setup.store.add_publisher("e2e", token_hash(token))
    env = {**setup.env, "DEPLOYD_REFRESH_INTERVAL": "0.2", "DEPLOYD_RATE_LIMIT": "0"}
    server = GunicornServer(env, workers=2)
    server.start(tmp_path)
    traffic = Traffic(server.url, setup.kit.issue(channel="stable"), token)
    try:
        server.wait_for_every_view()
        traffic.start()
        wait_until(lambda: len(traffic.acknowledged()) >= 3, "three publishes acknowledged")

        old_port = sentinels.primary_port()
        assert old_port is not None
        killed = time.monotonic()
        sentinels.server_on(old_port).kill()
        refused = traffic.first((503,), after=killed)
        new_port = sentinels.wait_for_failover(old_port)
        promoted = time.monotonic()
        # Its supervisor starts the dead server again; it comes back as the new primary's replica
        # (a change is acknowledged only once a replica has it).
        sentinels.restart_as_replica(old_port, new_port)
        working = traffic.first((200, 201), after=refused)
        acknowledged_before = len(traffic.acknowledged())
        wait_until(lambda: len(traffic.acknowledged()) >= acknowledged_before + 3, "more publishes")
    finally:
        traffic.finish()
        server.stop()

    refusals = {o for t, s, o, _ in traffic.publishes if s != 200 and s != 201}
    assert refusals == {"store_unavailable"}, traffic.publishes
    assert all(s == 503 for _, s, o, _ in traffic.publishes if o == "store_unavailable")
    assert traffic.poll_errors == []
    assert traffic.polls and set(traffic.polls) == {200}
    # Every acknowledged publish is in the store after the failover, as it was acknowledged.
    store = RedisStore.from_url(sentinels.url)
    try:
        for sequence, release in traffic.acknowledged():
            record = store.history_entry("stable", sequence)
            assert record is not None, f"acknowledged publish {sequence} lost"
            versions = [r["version"] for r in record.document["releases"]]
            assert versions[-1] == release
    finally:
        store.close()
    print(
        f"\nsentinel failover: first 503 {refused - killed:.2f} s after the kill;"
        f" replica promoted after {promoted - killed:.2f} s;"
        f" publishing worked again after {working - killed:.2f} s;"
        f" {len(traffic.polls)} polls all answered 200;"
        f" {len(traffic.acknowledged())} publishes acknowledged,"
        f" {sum(1 for p in traffic.publishes if p[1] == 503)} answered 503"
    )


def test_gunicorn_on_a_redis_cluster_serves_polls_publishes_and_counts_the_fleet(
    tmp_path, real_cluster, redis_cluster
):
    setup = redis_setup(tmp_path, redis_cluster.url)
    token = new_token()
    setup.store.add_publisher("e2e", token_hash(token))
    env = {**setup.env, "DEPLOYD_REFRESH_INTERVAL": "0.2"}
    server = GunicornServer(env, workers=2)
    server.start(tmp_path)
    license = setup.kit.issue(channel="stable", customer="acme")
    try:
        server.wait_for_every_view()
        poll = requests.get(
            server.url + SPEC,
            auth=("license", license),
            headers={INSTANCE_ID_HEADER: "cluster-1"},
            timeout=30,
        )
        assert poll.status_code == 200, poll.text
        published = requests.put(
            server.url + "/api/v1/channels/stable",
            data=channel_text(1).encode(),
            headers={"Content-Type": "application/yaml", "Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert published.status_code in (200, 201), published.text
        sequence = published.json()["sequence"]

        def serves_the_publish() -> bool:
            answer = requests.get(server.url + SPEC, auth=("license", license), timeout=30)
            return answer.json()["metadata"]["sequence"] == str(sequence)

        eventually(serves_the_publish, timeout=60)
        eventually(lambda: setup.store.instance(instance_key("acme", "cluster-1")), timeout=60)
    finally:
        server.stop()
    assert [r.sequence for r in setup.store.history("stable")][-1] == sequence
    assert "Traceback" not in server.log()
