from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from tests.support.gunicorn import REPO, SERVERS
from tests.support.redis_server import free_port


@pytest.fixture(params=SERVERS)
def server_kind(request) -> str:
    """Each server deployd runs under in production: a test using this runs once under each."""
    return request.param


@pytest.fixture(params=SERVERS)
def serve(request, tmp_path):
    """`deployd serve --server <each server>` on the embedded default: (url, state directory)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPLOYD_") and k != "REDIS_URL"}
    env["DEPLOYD_STATE_DIR"] = str(tmp_path / "state")
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [sys.executable, "-m", "deployd", "serve", "--port", str(port), "--server", request.param],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "deployd serve did not start"
            time.sleep(0.1)
        yield url, tmp_path / "state"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
        log.close()
