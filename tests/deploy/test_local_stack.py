"""deploy/local/run: Redis with an append-only file and gunicorn, started by one command,
serving signed specs, and gone (both processes) after one Ctrl-C."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support.redis_server import free_port, require_redis_server

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "deploy" / "local" / "run"
DEADLINE = 90  # seconds; generous for a busy machine


def wait_for(condition, what: str, process: subprocess.Popen, log: Path):
    deadline = time.monotonic() + DEADLINE
    while True:
        result = condition()
        if result:
            return result
        assert process.poll() is None, f"deploy/local/run exited early:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"{what} within {DEADLINE} s:\n{log.read_text()}"
        time.sleep(0.2)


def _sigint_as_from_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def healthy(url: str) -> bool:
    try:
        return requests.get(url + "/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture
def stack(tmp_path):
    require_redis_server()
    if not shutil.which("redis-cli"):
        pytest.skip("redis-cli not installed")
    port, redis_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPLOYD_") and k != "REDIS_URL"}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PORT=str(port),
        REDIS_PORT=str(redis_port),
        HOME=str(tmp_path),  # gunicorn's control socket
    )
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(RUN), str(tmp_path / "stack")],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # As from a terminal: a shell cannot trap a signal ignored when it started, and a
            # test run launched in the background (`pytest &`) hands SIGINT on ignored.
            preexec_fn=_sigint_as_from_a_terminal,
        )
    try:
        yield process, f"http://127.0.0.1:{port}", tmp_path / "stack", log
    finally:
        # Whatever the test saw, nothing it started outlives it (the script's whole group).
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def test_one_command_serves_specs_and_one_ctrl_c_stops_redis_and_gunicorn(stack):
    process, url, directory, log = stack
    wait_for(lambda: healthy(url), "the local stack answered /healthz", process, log)
    text = log.read_text()
    redis_pid = int(re.search(r"redis-server \(pid (\d+)\)", text).group(1))
    gunicorn_pid = int(re.search(r"gunicorn \(pid (\d+)\)", text).group(1))
    assert "stable: sequence 1" in text  # channels/ was published

    issued = subprocess.run(
        [sys.executable, "-m", "deployd", "license", "issue", "--customer", "acme"]
        + ["--key", str(directory / "secrets" / "local-license.key"), "--channel", "stable"],
        capture_output=True,
        text=True,
        check=True,
    )
    answer = requests.get(
        url + "/api/v1/operator/channel", auth=("license", issued.stdout.strip()), timeout=10
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["metadata"]["channel"] == "stable"
    assert 'keyid="local-spec"' in answer.headers["Deployd-Signature"]
    assert list((directory / "redis").glob("appendonly*")), "Redis keeps no append-only file"

    os.kill(process.pid, signal.SIGINT)
    assert process.wait(timeout=DEADLINE) == 130
    wait_for_gone = time.monotonic() + DEADLINE
    while not (gone(redis_pid) and gone(gunicorn_pid)):
        assert time.monotonic() < wait_for_gone, log.read_text()
        time.sleep(0.2)
    assert "local stack: stopped" in log.read_text()
