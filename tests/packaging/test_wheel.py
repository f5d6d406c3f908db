"""The built wheel, installed into a fresh virtual environment outside the checkout, is a whole
deployd: the command runs and the server answers its contract, the channel schema and a spec."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest
import requests

from tests.support.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e

SERVE_FROM_THE_WHEEL = """
import json, sys
from pathlib import Path
import deployd
from deployd.server.app import create_app
from deployd.server.settings import Settings

installed = Path(deployd.__file__).resolve()
assert not installed.is_relative_to(Path(sys.argv[1])), f"imported from the checkout: {installed}"
client = create_app(Settings(keys_dir=sys.argv[2], channels_dir=sys.argv[3],
                             state_dir=sys.argv[4])).test_client()
contract = client.get("/openapi.yaml")
assert contract.status_code == 200, contract.status_code
assert b"/api/v1/operator/channel" in contract.data
schema = installed.parent / "channels" / "schema" / "channel.schema.json"
assert json.loads(schema.read_text())["type"] == "object"
print("ok", installed)
"""


def run(*command: str | Path, cwd: Path) -> str:
    result = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_the_wheel_serves_its_contract_from_a_fresh_environment(tmp_path):
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", wheels, REPO, cwd=tmp_path)
    (wheel,) = wheels.glob("deployd-*.whl")
    environment = tmp_path / "env"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", wheel, cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = run(
        python,
        "-c",
        SERVE_FROM_THE_WHEEL,
        REPO,
        REPO / "keys",
        REPO / "channels",
        tmp_path / "state",
        cwd=elsewhere,
    )
    assert out.startswith("ok ")
    version = run(environment / "bin" / "deployd", "--version", cwd=elsewhere)
    assert version.startswith("deployd ")
    serves_from(environment, elsewhere)


def serves_from(environment: Path, elsewhere: Path) -> None:
    """`deployd serve` of the installed wheel (gunicorn, gevent workers) answers /healthz."""
    port = free_port()
    env = {
        **os.environ,
        "DEPLOYD_KEYS_DIR": str(REPO / "keys"),
        "DEPLOYD_CHANNELS_DIR": str(REPO / "channels"),
        "DEPLOYD_STATE_DIR": str(elsewhere / "state"),
    }
    server = subprocess.Popen(
        [environment / "bin" / "deployd", "serve", "--port", str(port)],
        cwd=elsewhere,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read().decode()
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).ok:
                    break
            except requests.RequestException:  # not listening yet, or too busy to answer yet
                pass
            assert time.monotonic() < deadline, "deployd serve never answered"
            time.sleep(0.1)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.communicate(timeout=60)
