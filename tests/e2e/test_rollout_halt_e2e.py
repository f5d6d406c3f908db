"""End to end: gunicorn (3 workers on Redis) and a fleet of simulated agents; the agents whose
reconcile fails report it, and the release halts by itself at exactly the configured threshold.
New instances then get the release below; an instance already on the halted release keeps it."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from deployd.channels import parse_channel_text
from deployd.client.config import ClientConfig, load_trusted_keys
from deployd.client.poller import Poller, SyncAction
from deployd.client.reporting import ReportSender
from deployd.protocol import SPEC_PATH
from deployd.publishing import publish_channel
from tests.support.factories import CHANNEL_YAML
from tests.support.gunicorn import GunicornServer, redis_setup
from tests.support.polling import Recorder

pytestmark = pytest.mark.e2e

WORKERS = 3
PATIENCE = 60.0
HEALTHY = 5
THRESHOLD = 3
WITH_HALT = (
    CHANNEL_YAML.format(name="stable")
    + f"""\
  - version: 1.3.0
    chart: {{version: 0.13.0}}
    halt: {{failures: {THRESHOLD}}}
"""
)


def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not seen within {PATIENCE:g} s"
        time.sleep(0.05)


@pytest.fixture
def served(tmp_path, real_redis, redis_server):
    setup = redis_setup(tmp_path, redis_server.url)
    channel = parse_channel_text(WITH_HALT, filename="stable.yaml")
    publish_channel(setup.store, channel, source=WITH_HALT, publisher="e2e")
    server = GunicornServer({**setup.env, "DEPLOYD_RATE_LIMIT": "false"}, workers=WORKERS)
    server.start(tmp_path)
    try:
        yield server, setup
    finally:
        server.stop()


class Agent:
    """One simulated cluster: its own license (customer), cache dir and reporter."""

    def __init__(self, n: int, server: GunicornServer, setup, tmp_path: Path) -> None:
        self.license = setup.kit.issue(customer=f"cluster-{n}", channel="stable")
        trusted = load_trusted_keys(sorted((tmp_path / "signing").glob("*.pub")))
        config = ClientConfig(
            server=server.url,
            license=self.license,
            trusted_keys=trusted,
            cache_dir=tmp_path / f"agent-{n}",
        )
        self.reporter = ReportSender(
            server=server.url,
            license=self.license,
            instance_id=f"cluster-{n}",
            user_agent="e2e-agent",
            backoff_base=0.05,
            backoff_ceiling=0.5,
        )
        self.poller = Poller(config, reporter=self.reporter)

    def reconcile(self, *, fails: bool) -> SyncAction:
        return self.poller.sync_once(Recorder(failures=1 if fails else 0)).action

    def close(self) -> None:
        self.poller.close()


def test_a_release_halts_by_itself_at_the_threshold(served, tmp_path):
    server, setup = served
    store = setup.store
    agents = [Agent(n, server, setup, tmp_path) for n in range(HEALTHY + THRESHOLD)]
    healthy, failing = agents[:HEALTHY], agents[HEALTHY:]
    try:
        with ThreadPoolExecutor(len(healthy)) as pool:
            actions = list(pool.map(lambda a: a.reconcile(fails=False), healthy))
        assert actions == [SyncAction.APPLIED] * HEALTHY
        wait_until(
            lambda: (
                store.outcome_counts("stable").get("1.3.0") is not None
                and store.outcome_counts("stable")["1.3.0"].applied == HEALTHY
            ),
            "the healthy agents' reports counted",
        )
        for n, agent in enumerate(failing, start=1):
            assert agent.reconcile(fails=True) is SyncAction.FAILED
            wait_until(
                lambda n=n: store.outcome_counts("stable")["1.3.0"].failed == n,
                f"failure {n} counted",
            )
            if n < THRESHOLD:
                assert store.halts() == {}, f"halted after {n} failures, before the threshold"
        wait_until(lambda: "1.3.0" in store.halts().get("stable", {}), "the automatic halt")
    finally:
        for agent in agents:
            agent.close()

    halt = store.halts()["stable"]["1.3.0"]
    assert halt.by == "policy"
    assert halt.numbers["failed"] == THRESHOLD
    assert halt.numbers["applied"] == HEALTHY
    assert halt.numbers["policy"] == {"failures": THRESHOLD}
    print(f"\nhalted: {halt.reason}; numbers {halt.numbers}")

    newcomer = setup.kit.issue(customer="newcomer", channel="stable")

    def release_served(license: str, **headers: str) -> str:
        response = requests.get(
            server.url + SPEC_PATH, auth=("license", license), headers=headers, timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()["metadata"]["release"]

    # Every worker picks the halt up in its background refresh: many polls, all on 1.2.0.
    wait_until(lambda: release_served(newcomer) == "1.2.0", "a new instance served 1.2.0")
    wait_until(
        lambda: all(release_served(newcomer) == "1.2.0" for _ in range(WORKERS * 10)),
        "every worker serving 1.2.0 to new instances",
    )
    on_halted = {"Deployd-Current-Version": "1.3.0"}
    assert all(release_served(newcomer, **on_halted) == "1.3.0" for _ in range(WORKERS * 10))
