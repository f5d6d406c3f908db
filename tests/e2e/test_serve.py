"""`deployd serve`, the README's first command: sample channels and dev key, no Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests

from deployd.keyfiles import load_public_key_file
from deployd.specs.signing import verify_signature
from tests.support.gunicorn import REPO
from tests.support.redis_server import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def serve(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPLOYD_") and k != "REDIS_URL"}
    env["DEPLOYD_STATE_DIR"] = str(tmp_path / "state")
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [sys.executable, "-m", "deployd", "serve", "--port", str(port)],
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


def test_embedded_default_serves_the_sample_channels_with_the_dev_key(serve):
    url, state_dir = serve
    issued = subprocess.run(
        [
            sys.executable,
            "-m",
            "deployd",
            "license",
            "issue",
            "--key",
            "keys/dev.key",
            "--customer",
            "acme",
            "--channel",
            "stable",
            "--channels",
            "stable,beta",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    license = issued.stdout.strip()
    assert license.count(".") == 2 and "\n" not in license
    response = requests.get(url + "/api/v1/operator/channel", auth=("license", license), timeout=5)
    assert response.status_code == 200, response.text
    spec = response.json()
    assert spec["metadata"]["channel"] == "stable"
    assert spec["chart"]["url"].startswith("https://")
    # The generated development signing key is where the README says clients find it.
    public = load_public_key_file(state_dir / "dev-signing.pub")
    assert verify_signature(
        response.headers["Deployd-Signature"], response.content, {"dev-signing": public}
    )
    beta = requests.get(
        url + "/api/v1/operator/channel?channel=beta", auth=("license", license), timeout=5
    )
    assert beta.json()["metadata"]["channel"] == "beta"
