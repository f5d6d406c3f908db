"""Reconcilers: a callable, a command (stdin + DEPLOYD_SPEC_FILE), a file; and the helm example."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from deployd.client.errors import ReconcileError
from deployd.client.hierarchy import DesiredState
from deployd.client.reconcilers import (
    CallableReconciler,
    CommandReconciler,
    FileReconciler,
    Reconciler,
)
from deployd.client.redact import mask_secrets
from deployd.publishers import new_token
from tests.support.helm import EXAMPLE, helm_env

DESIRED = DesiredState(
    {"channel": "stable", "release": "1.2.0", "sequence": "3"},
    {"url": "https://charts.example.com", "name": "server", "version": "0.12.0"},
    {"global": {"host": "https://wandb.example.com"}, "app": {"image": {"tag": "0.52.0"}}},
)


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/usr/bin/env bash\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def test_every_builtin_is_a_reconciler(tmp_path):
    for reconciler in (
        CallableReconciler(lambda d, p: None),
        CommandReconciler(["true"]),
        FileReconciler(tmp_path / "x.json"),
    ):
        assert isinstance(reconciler, Reconciler)


def test_a_callable_gets_desired_and_previous_and_its_exception_is_the_failure():
    calls = []
    CallableReconciler(lambda d, p: calls.append((d, p))).reconcile(DESIRED, None)
    assert calls == [(DESIRED, None)]

    def broken(desired, previous):
        raise RuntimeError("cluster unreachable")

    with pytest.raises(RuntimeError, match="cluster unreachable"):
        CallableReconciler(broken).reconcile(DESIRED, DESIRED)


def test_a_command_gets_the_spec_on_stdin_and_in_a_private_file(tmp_path):
    out = tmp_path / "out"
    command = script(
        tmp_path,
        "rec.sh",
        f"""\
        cat > {out}/stdin.json
        cp "$DEPLOYD_SPEC_FILE" {out}/file.json
        stat -c %a "$DEPLOYD_SPEC_FILE" > {out}/mode
        echo "$DEPLOYD_SPEC_FILE" > {out}/path
        """,
    )
    out.mkdir()
    CommandReconciler(str(command)).reconcile(DESIRED, None)
    assert (out / "stdin.json").read_bytes() == (out / "file.json").read_bytes()
    assert json.loads((out / "file.json").read_bytes()) == DESIRED.document()
    assert (out / "mode").read_text().strip() == "600"
    assert not Path((out / "path").read_text().strip()).exists()


def test_a_command_string_is_split_like_a_shell_would_without_a_shell(tmp_path):
    command = script(tmp_path, "args.sh", 'printf "%s\\n" "$@" > "$(dirname "$0")/args"\n')
    CommandReconciler(f"{command} 'two words' plain").reconcile(DESIRED, None)
    assert (tmp_path / "args").read_text().splitlines() == ["two words", "plain"]


def test_a_non_zero_exit_is_a_failure_that_carries_stderr(tmp_path):
    command = script(tmp_path, "fail.sh", "echo 'Error: UPGRADE FAILED' >&2\nexit 3\n")
    with pytest.raises(ReconcileError, match="status 3: Error: UPGRADE FAILED"):
        CommandReconciler([str(command)]).reconcile(DESIRED, None)


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["/nonexistent/reconcile"], "not found"), ([os.devnull], "not executable")],
)
def test_a_command_that_cannot_start_fails_clearly(argv, message):
    with pytest.raises(ReconcileError, match=message):
        CommandReconciler(argv).reconcile(DESIRED, None)


def test_an_empty_command_is_refused():
    with pytest.raises(ValueError):
        CommandReconciler("  ")


def test_a_command_past_its_timeout_is_killed_with_its_children(tmp_path):
    marker = tmp_path / "child-survived"
    command = script(tmp_path, "hang.sh", f"(sleep 0.8; touch {marker}) &\nsleep 30\n")
    started = time.monotonic()
    with pytest.raises(ReconcileError, match="timed out"):
        CommandReconciler([str(command)], timeout=0.3).reconcile(DESIRED, None)
    assert time.monotonic() - started < 5
    time.sleep(1.0)
    assert not marker.exists()


# --- secrets in what a command prints -------------------------------------------------------------

JWT_LICENSE = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhY21lIiwiY2hhbm5lbCI6InN0YWJsZSJ9.c2lnLWJ5dGVz"
OPAQUE_LICENSE = "opaque-license-4f9c2e"


@pytest.fixture
def leaky(tmp_path):
    """A reconciler script that echoes the merged spec and secrets to stdout and stderr."""
    token = new_token()
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "key.pem").write_bytes(pem)
    command = script(
        tmp_path,
        "leaky.sh",
        f"""\
        cat
        echo
        echo "publisher token: $TOKEN"
        echo "helm --set global.license={OPAQUE_LICENSE} --password hunter2-cli" >&2
        echo "using $TOKEN with Authorization: Bearer {JWT_LICENSE}" >&2
        cat {tmp_path / "key.pem"} >&2
        exit "${{EXIT:-0}}"
        """,
    )
    env = {"PATH": os.environ["PATH"], "TOKEN": token}
    secrets = [JWT_LICENSE, OPAQUE_LICENSE, token, "hunter2-db", "hunter2-cli"]
    secrets += pem.decode().strip().splitlines()[1:-1]  # the key's base64 lines
    return command, env, secrets


LEAKY_DESIRED = DesiredState(
    DESIRED.metadata,
    DESIRED.chart,
    {"global": {"license": JWT_LICENSE, "mysql": {"password": "hunter2-db"}}},
)


def test_secrets_in_a_commands_output_are_masked_in_the_log(leaky, caplog):
    caplog.set_level(logging.INFO, logger="deployd.client")
    command, env, secrets = leaky
    CommandReconciler([str(command)], env=env, secrets=[OPAQUE_LICENSE]).reconcile(
        LEAKY_DESIRED, None
    )
    for secret in secrets:
        assert secret not in caplog.text
    assert '"license": "***"' in caplog.text and '"password": "***"' in caplog.text
    assert "leaky.sh: publisher token: ***" in caplog.text
    # Standard error is logged too, at info, when the command succeeds.
    stderr = [r for r in caplog.records if "(stderr)" in r.getMessage()]
    assert {r.levelno for r in stderr} == {logging.INFO}
    assert "leaky.sh (stderr): using *** with Authorization: Bearer ***" in caplog.text
    assert "leaky.sh (stderr): ***" in caplog.text  # the private key, whole


def test_secrets_in_a_failing_commands_error_are_masked(leaky, caplog):
    command, env, secrets = leaky
    with pytest.raises(ReconcileError) as failed:
        CommandReconciler(
            [str(command)], env={**env, "EXIT": "2"}, secrets=[OPAQUE_LICENSE]
        ).reconcile(LEAKY_DESIRED, None)
    assert "status 2:" in failed.value.message
    for secret in secrets:
        assert secret not in failed.value.message and secret not in caplog.text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"license: {JWT_LICENSE}", "license: ***"),
        (f"token {JWT_LICENSE}.", "token ***."),
        (
            '{"global": {"license": "x-1", "host": "h"}}',
            '{"global": {"license": "***", "host": "h"}}',
        ),
        ("DB_PASSWORD=hunter2 and more", "DB_PASSWORD=***"),
        ("--registry-password s3cret", "--registry-password ***"),
        ("api_key: 'k k'", "api_key: '***'"),
        ("clientSecret: abc, next: 1", "clientSecret: ***, next: 1"),
        ("Authorization: Basic bGljZW5zZTp4", "Authorization: Basic ***"),
        (f"{OPAQUE_LICENSE} is mine", "*** is mine"),
        ("-----BEGIN EC PRIVATE KEY-----\nAAA\n-----END EC PRIVATE KEY-----\nok", "***\nok"),
        ("-----BEGIN PRIVATE KEY-----\nAAA (cut off)", "***"),
        (
            "Release wandb upgraded; the secretName: {a: 1} stays",
            "Release wandb upgraded; the secretName: {a: 1} stays",
        ),
        ("no token was needed", "no token was needed"),
    ],
)
def test_mask_secrets(text, masked):
    assert mask_secrets(text, [OPAQUE_LICENSE]) == masked


@pytest.mark.parametrize("name", ["spec.json", "nested/dir/spec.json"])
def test_the_file_reconciler_writes_json_atomically(tmp_path, name):
    path = tmp_path / name
    FileReconciler(path).reconcile(DESIRED, None)
    assert json.loads(path.read_bytes()) == DESIRED.document()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(os.listdir(path.parent)) == ["spec.json"]


def test_the_file_reconciler_writes_yaml_for_yaml_names(tmp_path):
    FileReconciler(tmp_path / "spec.yaml").reconcile(DESIRED, None)
    assert yaml.safe_load((tmp_path / "spec.yaml").read_text()) == DESIRED.document()


def test_the_file_reconciler_reports_an_unwritable_place(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ReconcileError, match="cannot write"):
        FileReconciler(tmp_path / "file" / "spec.json").reconcile(DESIRED, None)


# --- examples/helm-reconcile.sh -----------------------------------------------------------------


@pytest.fixture
def fake_helm(tmp_path):
    """A `helm` on PATH that records its arguments and the values it was given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script(
        bin_dir,
        "helm",
        f"""\
        printf "%s\\n" "$@" > {tmp_path}/helm-args
        while [ $# -gt 0 ]; do
            if [ "$1" = --values ]; then cp "$2" {tmp_path}/helm-values; fi
            shift
        done
        exit "${{FAKE_HELM_EXIT:-0}}"
        """,
    )
    return tmp_path


def test_the_helm_example_runs_helm_upgrade_install_with_chart_and_values(fake_helm):
    env = helm_env(fake_helm / "bin", HELM_NAMESPACE="wandb", HELM_EXTRA_ARGS="--wait --atomic")
    CommandReconciler([str(EXAMPLE)], env=env).reconcile(DESIRED, None)
    args = (fake_helm / "helm-args").read_text().splitlines()
    values_at = args.index("--values") + 1
    assert args[:values_at] + args[values_at + 1 :] == [
        "upgrade", "--install", "server", "server",
        "--repo", "https://charts.example.com",
        "--version", "0.12.0",
        "--namespace", "wandb", "--create-namespace",
        "--values",
        "--wait", "--atomic",
    ]  # fmt: skip
    assert json.loads((fake_helm / "helm-values").read_text()) == DESIRED.values


@pytest.mark.parametrize(
    ("chart", "expected"),
    [
        ({"path": "/charts/server"}, ["/charts/server"]),
        (
            {"url": "oci://registry.example.com/charts", "name": "server", "version": "1.0.0"},
            ["oci://registry.example.com/charts/server", "--version", "1.0.0"],
        ),
    ],
)
def test_the_helm_example_handles_local_and_oci_charts(fake_helm, chart, expected):
    desired = DesiredState(DESIRED.metadata, chart, DESIRED.values)
    env = helm_env(fake_helm / "bin", HELM_RELEASE="wandb")
    CommandReconciler([str(EXAMPLE)], env=env).reconcile(desired, None)
    args = (fake_helm / "helm-args").read_text().splitlines()
    assert args[:3] == ["upgrade", "--install", "wandb"]
    assert args[3 : 3 + len(expected)] == expected


def test_the_helm_example_passes_helm_failures_on(fake_helm):
    env = helm_env(fake_helm / "bin", FAKE_HELM_EXIT="1")
    with pytest.raises(ReconcileError, match="status 1"):
        CommandReconciler([str(EXAMPLE)], env=env).reconcile(DESIRED, None)


def test_the_helm_example_fails_clearly_without_helm(tmp_path):
    if shutil.which("helm", path="/usr/bin:/bin"):
        pytest.skip("a system helm is installed")
    with pytest.raises(ReconcileError, match="status 127: helm-reconcile: 'helm' is not on PATH"):
        CommandReconciler([str(EXAMPLE)], env=helm_env(None)).reconcile(DESIRED, None)


def test_the_helm_example_refuses_a_chart_it_cannot_name(fake_helm):
    desired = DesiredState(DESIRED.metadata, {"version": "1.0.0"}, DESIRED.values)
    with pytest.raises(ReconcileError, match="either path, or url and name"):
        CommandReconciler([str(EXAMPLE)], env=helm_env(fake_helm / "bin")).reconcile(desired, None)
    assert not (fake_helm / "helm-args").exists()
