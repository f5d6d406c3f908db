"""The image: built with podman from the Dockerfile, run the way Kubernetes runs it (read-only
root, no capabilities, a non-root user, Secrets mounted read-only, Redis outside), under either
server (gunicorn, its entry point, and granian, the Procfile's web-granian line), it answers its
HEALTHCHECK, /healthz and a signed spec, and stops cleanly.

Opt-in: it runs when DEPLOYD_TEST_PYTHON_IMAGE names a Python base image podman has (or can
pull), and is skipped otherwise, CI included: installing podman and making a base image offline
(debootstrap, then `podman import`) takes longer than the whole CI run may. Extra `podman build`
and `podman run` arguments for unusual hosts (another OCI runtime, a proxy's CA for pip) come
from DEPLOYD_TEST_PODMAN_BUILD_ARGS and DEPLOYD_TEST_PODMAN_RUN_ARGS.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
import uuid

import pytest
import requests

from tests.support.gunicorn import REPO, redis_setup
from tests.support.redis_server import free_port

pytestmark = pytest.mark.e2e

PODMAN = shutil.which("podman")
DEADLINE = 120  # seconds; generous for a busy machine
BUILD_TIMEOUT = 1800


def podman(*args: str, timeout: float = DEADLINE, check: bool = True) -> str:
    result = subprocess.run(
        [PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def extra(variable: str) -> list[str]:
    return shlex.split(os.environ.get(variable, ""))


def require_base_image(base: str) -> None:
    if subprocess.run([PODMAN, "image", "exists", base], check=False).returncode == 0:
        return
    pulled = subprocess.run(
        [PODMAN, "pull", base], capture_output=True, text=True, timeout=600, check=False
    )
    if pulled.returncode != 0:
        pytest.fail(f"base image {base} not available ({pulled.stderr.strip()[-300:]})")


@pytest.fixture(scope="module")
def image():
    base = os.environ.get("DEPLOYD_TEST_PYTHON_IMAGE")
    if not base:
        pytest.skip("opt-in: set DEPLOYD_TEST_PYTHON_IMAGE to a Python base image podman has")
    if PODMAN is None:
        pytest.fail("DEPLOYD_TEST_PYTHON_IMAGE is set but podman is not installed")
    require_base_image(base)
    tag = f"localhost/deployd-test:{uuid.uuid4().hex[:12]}"
    podman(
        "build",
        "--format",
        "docker",  # keeps HEALTHCHECK (the OCI format has none)
        "--build-arg",
        f"PYTHON_IMAGE={base}",
        *extra("DEPLOYD_TEST_PODMAN_BUILD_ARGS"),
        "-t",
        tag,
        str(REPO),
        timeout=BUILD_TIMEOUT,
    )
    try:
        yield tag
    finally:
        podman("rmi", "-f", tag, check=False)


def wait_until_healthy(url: str, name: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            if requests.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        state = podman("inspect", "--format", "{{.State.Status}}", name, check=False).strip()
        assert state == "running", f"container {state}:\n{podman('logs', name, check=False)}"
        assert time.monotonic() < deadline, podman("logs", name, check=False)
        time.sleep(0.5)


# How each server is started in the image: extra `podman run` arguments before the image, and
# the command after it (none: the image's ENTRYPOINT and CMD, gunicorn).
SERVERS = {
    "gunicorn": ([], []),
    "granian": (["--entrypoint", "python3"], ["-m", "deployd.server.granian"]),
}


@pytest.mark.parametrize("server", list(SERVERS))
def test_the_image_serves_specs_read_only_as_non_root_and_stops_cleanly(
    server, image, tmp_path, redis_server, real_redis
):
    before_image, command = SERVERS[server]
    setup = redis_setup(tmp_path, redis_server.url)
    signing_key = setup.env["DEPLOYD_SIGNING_KEY"]
    port = free_port()
    name = f"deployd-test-{port}"
    podman(
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "host",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        *extra("DEPLOYD_TEST_PODMAN_RUN_ARGS"),
        # As Kubernetes mounts Secrets: read-only, readable by the container's group.
        "-v",
        f"{setup.kit.keys_dir}:/etc/deployd/license-keys:ro,U",
        "-v",
        f"{os.path.dirname(signing_key)}:/etc/deployd/signing:ro,U",
        "-e",
        f"REDIS_URL={setup.env['REDIS_URL']}",
        "-e",
        "DEPLOYD_KEYS_DIR=/etc/deployd/license-keys",
        "-e",
        f"DEPLOYD_SIGNING_KEY=/etc/deployd/signing/{os.path.basename(signing_key)}",
        "-e",
        "HOST=127.0.0.1",
        "-e",
        f"PORT={port}",
        "-e",
        "WEB_CONCURRENCY=2",
        *before_image,
        image,
        *command,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, name)
        assert podman("exec", name, "id", "-u").strip() == "10001"
        podman("healthcheck", "run", name)  # the image's own HEALTHCHECK passes

        answer = requests.get(
            url + "/api/v1/operator/channel", auth=("license", setup.kit.issue()), timeout=10
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["metadata"]["channel"] == "stable"
        assert 'keyid="spec-1"' in answer.headers["Deployd-Signature"]
        assert requests.get(url + "/readyz", timeout=10).status_code == 200

        podman("stop", "--time", "40", name, timeout=DEADLINE)
        exit_code = podman("inspect", "--format", "{{.State.ExitCode}}", name).strip()
        assert exit_code == "0", podman("logs", name, check=False)
    finally:
        podman("rm", "--force", name, check=False)
