"""End to end: `deployd publish --server` into gunicorn (3 workers on Redis); every worker comes
to serve the new document and never goes back to the old one, and a rollback travels the same
way. How fast it travels is printed (the benchmark measures it), never asserted."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
import requests

from deployd.publishers import new_token, token_hash
from tests.support.factories import CHANNEL_YAML, write_channels
from tests.support.gunicorn import GunicornServer, redis_setup

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
WORKERS = 3
# How long to wait for what must happen, however busy the machine: never a latency bound.
PATIENCE = 60.0
# Each access log line names the worker (pid) that answered and the probe number it was asked.
ACCESS_LOG = re.compile(r"^<(\d+)> (\S+) (\S*) (\d{3})$", re.M)
NEW_RELEASE = """\
  - version: 1.3.0
    chart: {version: 0.13.0}
    values: {app: {image: {tag: "0.53.0"}}}
"""


@pytest.fixture
def served(tmp_path, real_redis, redis_server):
    setup = redis_setup(tmp_path, redis_server.url)
    kit, store = setup.kit, setup.store
    token = new_token()
    store.add_publisher("ci", token_hash(token))
    server = GunicornServer(
        {
            **setup.env,
            "DEPLOYD_RATE_LIMIT": "false",
            "GUNICORN_CMD_ARGS": '--access-logformat "%(p)s %(U)s %(q)s %(s)s"',
        },
        workers=WORKERS,
    )
    server.start(tmp_path)
    try:
        yield server, kit, store, token
    finally:
        server.stop()
        store.close()


class Prober:
    """Asks for the spec from several threads, each request numbered, until told to stop."""

    def __init__(self, url: str, license: str) -> None:
        self.url = url + "/api/v1/operator/channel"
        self.license = license
        self.answers: dict[int, tuple[float, str]] = {}  # probe -> (time answered, sequence)
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def _probe_forever(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._next += 1
                probe = self._next
            response = requests.get(
                self.url,
                params={"probe": probe},
                auth=("license", self.license),
                headers={"Connection": "close"},
                timeout=5,
            )
            assert response.status_code == 200, response.text
            self.answers[probe] = (time.monotonic(), response.json()["metadata"]["sequence"])

    def start(self, threads: int = 6) -> None:
        self._threads = [threading.Thread(target=self._probe_forever) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=10)


def workers_by_probe(log: str) -> dict[int, str]:
    """probe -> the pid of the worker that answered it, in the order of the access log."""
    found = {}
    for pid, path, query, _status in ACCESS_LOG.findall(log):
        match = re.fullmatch(r"probe=(\d+)", query)
        if path == "/api/v1/operator/channel" and match:
            found[int(match.group(1))] = pid
    return found


def deployd(server: GunicornServer, token: str, *argv: str) -> subprocess.CompletedProcess:
    """Run the deployd CLI against `server` in its own process, with `token` in the environment."""
    env = {**os.environ, "DEPLOYD_PUBLISHER_TOKEN": token}
    env.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "deployd", *argv, "--server", server.url],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def wait_until(predicate, what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not seen within {PATIENCE:g} s"
        time.sleep(0.05)


def test_a_publish_through_one_worker_is_served_by_every_worker_and_none_goes_back(served):
    server, kit, store, token = served
    prober = Prober(server.url, kit.issue(channel="stable"))
    prober.start()

    def workers_serving(sequence: str) -> set[str]:
        found = workers_by_probe(server.log())
        answered = prober.answers
        return {pid for probe, pid in found.items() if answered.get(probe, (0, ""))[1] == sequence}

    try:
        wait_until(lambda: len(workers_serving("1")) == WORKERS, "probes answered by every worker")
        warm = workers_serving("1")
        response = requests.put(
            server.url + "/api/v1/channels/stable",
            data=CHANNEL_YAML.format(name="stable") + NEW_RELEASE,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/yaml"},
            timeout=30,
        )
        published = time.monotonic()
        assert response.status_code == 200, response.text
        assert (response.json()["sequence"], response.json()["publisher"]) == (2, "ci")
        wait_until(lambda: workers_serving("2") == warm, "every worker serving sequence 2")
    finally:
        prober.stop()

    # Each worker's answers in the order it wrote them to its access log: the order it decided
    # them in (the client's receipt times are no order: a thread on a busy machine can take a
    # response decided earlier after another thread took a later one).
    by_worker: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for probe, pid in workers_by_probe(server.log()).items():
        if probe in prober.answers:
            by_worker[pid].append(prober.answers[probe])
    assert set(by_worker) == warm
    lags, last_old = {}, {}
    for pid, answers in by_worker.items():
        sequences = [sequence for _, sequence in answers]
        assert "2" in sequences, f"worker {pid} never served sequence 2"
        # Once a worker serves the new document it never goes back to the old one.
        first_new = sequences.index("2")
        assert set(sequences[first_new:]) == {"2"}, f"worker {pid} went back: {sequences}"
        new = [at for at, sequence in answers if sequence == "2"]
        lags[pid] = min(new) - published
        old = [at for at, sequence in answers if sequence == "1"]
        assert old, f"worker {pid} was not asked before the publish"
        last_old[pid] = max(old) - published
    print(
        f"\n{len(prober.answers)} probes; after the PUT answered, the workers first served the"
        f" new sequence at {sorted(round(lag, 3) for lag in lags.values())}s and the old one last"
        f" at {sorted(round(lag, 3) for lag in last_old.values())}s"
    )


def test_rollback_and_promotion_over_gunicorn(served, tmp_path):
    server, kit, store, token = served
    channels = write_channels(tmp_path / "channels", ("beta",))
    (channels / "beta.yaml").write_text(CHANNEL_YAML.format(name="beta") + NEW_RELEASE)
    assert deployd(server, token, "publish", str(channels)).returncode == 0
    promoted = deployd(server, token, "promote", "1.3.0", "--from", "beta", "--to", "stable")
    assert promoted.stdout == "stable: sequence 2 (promoted 1.3.0 from beta: added 1.3.0)\n"
    rolled = deployd(server, token, "rollback", "stable", "1")
    assert rolled.stdout == "stable: sequence 3 (rollback to 1: removed 1.3.0)\n"
    history = deployd(server, token, "history", "stable")
    assert [line.split()[0] for line in history.stdout.splitlines()] == ["3", "2", "1"]
    license = kit.issue(channel="stable")
    deadline = time.monotonic() + PATIENCE
    while True:
        spec = requests.get(
            server.url + "/api/v1/operator/channel", auth=("license", license), timeout=5
        ).json()
        if spec["metadata"]["sequence"] == "3" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (spec["metadata"]["sequence"], spec["metadata"]["release"]) == ("3", "1.2.0")
