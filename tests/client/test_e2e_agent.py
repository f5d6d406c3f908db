"""The README's walk-through, run as a user would: `deployd serve` (gunicorn), a dev license
from `deployd license issue`, then `deployd agent` as separate processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.client.faultserver import closed_port_url

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def deployd(
    *args: str, cwd: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), **(extra_env or {})}
    env.pop("DEPLOYD_LICENSE", None)
    return subprocess.run(
        [sys.executable, "-m", "deployd", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def served(tmp_path):
    """`deployd serve` in a copy of the repository's channels/ and keys/ (a real gunicorn)."""
    for name in ("channels", "keys"):
        shutil.copytree(REPO / name, tmp_path / name)
    url = closed_port_url()
    port = url.rsplit(":", 1)[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "deployd", "serve", "--port", port],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120  # however busy the machine
        while True:
            try:
                if requests.get(url + "/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or too busy to answer yet
                pass
            assert server.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield tmp_path, url, server
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)


def test_the_readme_walk_through(served):
    site, url, server = served
    issued = deployd(
        "license", "issue", "--key", "keys/dev.key", "--customer", "acme", "--channel", "stable",
        cwd=site,
    )  # fmt: skip
    assert issued.returncode == 0, issued.stderr
    (site / "license.jwt").write_text(issued.stdout)
    agent = (
        "agent", "--server", url, "--license-file", "license.jwt",
        "--trust-key", ".deployd/dev-signing.pub", "--write", "out/spec.yaml", "--once",
    )  # fmt: skip

    first = deployd(*agent, cwd=site)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("applied release ")
    assert "release:" in (site / "out" / "spec.yaml").read_text()
    assert issued.stdout.strip() not in first.stderr  # the license is never logged

    second = deployd(*agent, cwd=site)
    assert second.returncode == 0 and second.stdout.startswith("unchanged: ")

    # Without helm the example fails clearly; HELM points nowhere so a real helm is never run.
    helm = deployd(
        *agent[:-3], "--exec", str(REPO / "examples" / "helm-reconcile.sh"), "--once",
        "--cache-dir", "helm-cache", cwd=site, extra_env={"HELM": "/nonexistent/helm"},
    )  # fmt: skip
    assert helm.returncode == 1
    assert "'/nonexistent/helm' is not on PATH" in helm.stderr

    os.killpg(server.pid, signal.SIGKILL)
    server.wait(10)
    down = deployd(*agent, cwd=site)
    assert down.returncode == 3, down.stderr
    assert "used the last good spec" in down.stderr
