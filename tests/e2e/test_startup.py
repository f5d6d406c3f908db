"""Starting a server that is configured wrongly: one line, once, a non-zero exit, no traceback.

Real processes: the Procfile's `gunicorn -c gunicorn.conf.py deployd.wsgi:app`, gunicorn without
the checked-in config (so a worker meets the error), the Procfile's granian line and
`deployd serve`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from deployd.keyfiles import write_key_pair
from deployd.licensing.keyring import generate_private_key
from deployd.licensing.tokens import issue_license
from tests.support.factories import make_license_kit
from tests.support.gunicorn import REPO, GunicornServer, redis_setup
from tests.support.redis_server import free_port

pytestmark = pytest.mark.e2e

# Never connected to: the configuration is refused before anything talks to the store.
DEAD_REDIS = "redis://127.0.0.1:1/0"
PROCFILE = ["gunicorn", "-c", "gunicorn.conf.py", "deployd.wsgi:app"]
PROCFILE_GRANIAN = ["deployd.server.granian"]  # web-granian: python -m deployd.server.granian
ERROR_LINE = "deployd: configuration error: "
GUNICORN_LOG_LINE = re.compile(r"\[[^\]]+\] \[\d+\] \[[A-Z]+\] ")


def refused_start(argv: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run `python -m <argv>` from the checkout with only `env` of deployd's settings, until it
    exits. One that starts serving instead is stopped, and the test fails."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DEPLOYD_")}
    clean.pop("REDIS_URL", None)
    full_env = {**clean, "HOST": "127.0.0.1", "PORT": str(free_port()), **env}
    process = subprocess.Popen(
        [sys.executable, "-m", *argv],
        cwd=REPO,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"{' '.join(argv)} started instead of refusing its configuration:\n{err}")
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


def the_one_error_line(stderr: str, *, gunicorn_lines_at_most: int) -> str:
    """The single `deployd: configuration error:` line; everything else must be gunicorn's own
    log lines, no more than `gunicorn_lines_at_most` of them."""
    lines = stderr.splitlines()
    errors = [line for line in lines if line.startswith(ERROR_LINE)]
    others = [line for line in lines if not line.startswith(ERROR_LINE)]
    assert len(errors) == 1, stderr
    assert all(GUNICORN_LOG_LINE.match(line) for line in others), stderr
    assert len(others) <= gunicorn_lines_at_most, stderr
    return errors[0]


def _own_keys(tmp_path: Path) -> dict[str, str]:
    kit = make_license_kit(tmp_path)
    signing_key, _ = write_key_pair(generate_private_key(), tmp_path / "signing", "spec-1")
    return {"DEPLOYD_KEYS_DIR": str(kit.keys_dir), "DEPLOYD_SIGNING_KEY": str(signing_key)}


def _no_signing_key(tmp_path: Path) -> dict[str, str]:
    return {"DEPLOYD_KEYS_DIR": _own_keys(tmp_path)["DEPLOYD_KEYS_DIR"]}


def _no_keys_dir(tmp_path: Path) -> dict[str, str]:
    # The shape issue 9 found: run from the checkout, so keys/ with the development key is there.
    return {"DEPLOYD_SIGNING_KEY": _own_keys(tmp_path)["DEPLOYD_SIGNING_KEY"]}


def _renamed_dev_key(tmp_path: Path) -> dict[str, str]:
    env = _own_keys(tmp_path)
    shutil.copy(REPO / "keys" / "dev.pub", Path(env["DEPLOYD_KEYS_DIR"]) / "prod-2026.pub")
    return env


CASES = [
    (_no_signing_key, "DEPLOYD_SIGNING_KEY must name an Ed25519 private key file"),
    (_no_keys_dir, "DEPLOYD_KEYS_DIR is unset"),
    (_renamed_dev_key, "license key 'prod-2026' in DEPLOYD_KEYS_DIR is the development key"),
]
CASE_IDS = ["no signing key", "no keys dir", "renamed dev key"]


@pytest.mark.parametrize("configure, complaint", CASES, ids=CASE_IDS)
def test_a_configuration_error_is_one_line_under_the_procfile_command(
    tmp_path, configure, complaint
):
    env = {"REDIS_URL": DEAD_REDIS, "WEB_CONCURRENCY": "4", **configure(tmp_path)}
    result = refused_start(PROCFILE, env)
    assert result.returncode != 0
    # The master checked it before forking any worker: gunicorn's "Starting" line and ours.
    assert complaint in the_one_error_line(result.stderr, gunicorn_lines_at_most=3)


@pytest.mark.parametrize("configure, complaint", CASES, ids=CASE_IDS)
def test_a_configuration_error_is_one_line_under_the_granian_procfile_command(
    tmp_path, configure, complaint
):
    env = {"REDIS_URL": DEAD_REDIS, "WEB_CONCURRENCY": "4", **configure(tmp_path)}
    result = refused_start(PROCFILE_GRANIAN, env)
    assert result.returncode == 3
    # Checked before granian starts: no worker was forked to meet it four times.
    assert complaint in the_one_error_line(result.stderr, gunicorn_lines_at_most=0)


def test_a_worker_that_meets_a_configuration_error_stops_gunicorn_in_one_line(tmp_path):
    # Without gunicorn.conf.py (which gunicorn would also load from the current directory by
    # default) no master hook checks first: the worker meets the error itself.
    empty = tmp_path / "empty.conf.py"
    empty.write_text("")
    bind = f"127.0.0.1:{free_port()}"
    argv = ["gunicorn", "-c", str(empty), "--workers", "1", "--bind", bind, "deployd.wsgi:app"]
    result = refused_start(argv, {"REDIS_URL": DEAD_REDIS, **_no_signing_key(tmp_path)})
    assert result.returncode == 3  # gunicorn's boot error: the master stops, forks no others
    line = the_one_error_line(result.stderr, gunicorn_lines_at_most=10)
    assert "DEPLOYD_SIGNING_KEY must name" in line


@pytest.mark.parametrize("configure, complaint", CASES, ids=CASE_IDS)
def test_a_configuration_error_is_one_line_under_deployd_serve(tmp_path, configure, complaint):
    argv = ["deployd", "serve", "--port", str(free_port())]
    result = refused_start(argv, {"REDIS_URL": DEAD_REDIS, **configure(tmp_path)})
    assert result.returncode != 0
    assert complaint in the_one_error_line(result.stderr, gunicorn_lines_at_most=0)


def test_a_server_allowed_the_dev_key_warns_and_says_which_keys_it_trusts(
    tmp_path, real_redis, redis_server
):
    env = dict(redis_setup(tmp_path, redis_server.url).env)
    del env["DEPLOYD_KEYS_DIR"]  # so the checkout's keys/ and its development key are used
    server = GunicornServer({**env, "DEPLOYD_ALLOW_DEV_KEY": "1"}, workers=2)
    server.start(tmp_path)
    try:
        license = issue_license(
            REPO / "keys" / "dev.key", customer="t", channel="stable", expires_in=timedelta(1)
        )
        response = requests.get(
            server.url + "/api/v1/operator/channel", auth=("license", license), timeout=5
        )
        assert response.status_code == 200, response.text
    finally:
        server.stop()
    log = server.log()
    assert "DEPLOYD_ALLOW_DEV_KEY is set and DEPLOYD_KEYS_DIR is unset" in log
    assert "license keys: dev (EdDSA, the public development key)" in log
    assert "response-signing key: spec-1" in log
