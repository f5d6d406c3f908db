"""Metrics over real gunicorn workers on redis-server: one exposition over every worker (each
writes its own files in the multiprocess directory; a scrape, whichever worker answers, reads
them all), killed workers' counts kept and their live gauges dropped, and the metrics on a port
of their own served by the master.

A worker adds what its polls counted to its files in its background round
(deployd.metrics.tally), so a scrape sees another worker's polls within a refresh interval: the
tests wait for a count to arrive, then check that it stays exact."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import requests

from deployd.protocol import METRICS_PATH, SPEC_PATH
from tests.support.gunicorn import GunicornServer, redis_setup
from tests.support.metrics import Samples, parse, value
from tests.support.polling import eventually
from tests.support.redis_server import free_port

pytestmark = pytest.mark.e2e

TOKEN = "scrape-token-for-tests-42"
WORKERS = 3
POLLS = 30
PATIENCE = 120.0  # how long to wait for what must happen, however busy the machine


def poll(url: str, license: str) -> None:
    # A new connection each time (Connection: close), so the kernel hands polls to any worker.
    response = requests.get(
        url + SPEC_PATH, auth=("license", license), headers={"Connection": "close"}, timeout=30
    )
    assert response.status_code == 200


def scrape(url: str, token: str | None = TOKEN) -> Samples:
    headers = {"Connection": "close"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = requests.get(url + METRICS_PATH, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return parse(response.text)


def polls_counted(samples: Samples) -> float:
    return value(samples, "deployd_http_requests_total", route=SPEC_PATH, status="200")


def worker_pids(server: GunicornServer) -> set[int]:
    assert server.process is not None
    master = server.process.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {int(pid) for pid in children}


@pytest.fixture
def served(tmp_path, real_redis, redis_server):
    setup = redis_setup(tmp_path, redis_server.url)
    directory = tmp_path / "metrics"
    env = {
        **setup.env,
        "DEPLOYD_REFRESH_INTERVAL": "0.2",
        "DEPLOYD_METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
    }
    server = GunicornServer(env, workers=WORKERS)
    server.start(tmp_path)
    try:
        server.wait_for_every_view()
        yield server, setup.kit, directory
    finally:
        server.stop()


def test_one_exposition_counts_every_workers_polls_and_survives_killed_workers(served):
    server, kit, directory = served
    license = kit.issue(channel="stable")
    for _ in range(POLLS):
        poll(server.url, license)
    # Whichever worker answers a scrape, it counts every worker's polls, once their rounds ran.
    eventually(lambda: polls_counted(scrape(server.url)) == POLLS, PATIENCE)
    for _ in range(2 * WORKERS):
        assert polls_counted(scrape(server.url)) == POLLS
    assert requests.get(server.url + METRICS_PATH, timeout=30).status_code == 401

    # Kill every worker that served those polls, one at a time: the counts they wrote stay in
    # the totals, read by the workers gunicorn starts instead.
    for pid in sorted(worker_pids(server)):
        os.kill(pid, signal.SIGKILL)
        eventually(lambda pid=pid: pid not in worker_pids(server), PATIENCE)
        eventually(lambda: len(worker_pids(server)) == WORKERS, PATIENCE)
    server.wait_for_every_view()  # the new workers have their view
    eventually(lambda: polls_counted(scrape(server.url)) == POLLS, PATIENCE)
    alive = worker_pids(server)
    for _ in range(2):
        poll(server.url, license)
    eventually(lambda: polls_counted(scrape(server.url)) == POLLS + 2, PATIENCE)

    # A dead worker's live gauges are gone; its counters are kept.
    for gauge_file in directory.glob("gauge_live*_*.db"):
        pid = int(gauge_file.stem.rsplit("_", 1)[1])
        assert pid in alive or pid == server.process.pid, gauge_file.name

    samples = scrape(server.url)
    eventually(lambda: value(scrape(server.url), "deployd_compiled_channels") >= 1, PATIENCE)
    assert value(samples, "deployd_store_unreachable_workers") == 0
    assert value(samples, "deployd_revocation_max_staleness_seconds") == 300


def test_metrics_on_their_own_port_are_served_by_the_master_only_there(
    tmp_path, real_redis, redis_server
):
    setup = redis_setup(tmp_path, redis_server.url)
    metrics_port = free_port()
    env = {**setup.env, "DEPLOYD_METRICS": "on", "DEPLOYD_METRICS_PORT": str(metrics_port)}
    server = GunicornServer(env, workers=2)
    server.start(tmp_path)
    try:
        metrics_url = f"http://127.0.0.1:{metrics_port}"
        eventually(lambda: _answers(metrics_url), PATIENCE)
        on_api_port = requests.get(server.url + METRICS_PATH, timeout=30)
        assert on_api_port.status_code == 404
        assert on_api_port.json()["error"]["code"] == "not_found"
        license = setup.kit.issue(channel="stable")
        for _ in range(5):
            poll(server.url, license)
        eventually(lambda: polls_counted(scrape(metrics_url, token=None)) == 5, PATIENCE)
        other = requests.get(metrics_url + SPEC_PATH, timeout=30)
        assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    finally:
        server.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url + METRICS_PATH, timeout=5).status_code == 200
    except requests.RequestException:
        return False
