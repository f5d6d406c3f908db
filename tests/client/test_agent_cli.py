"""`deployd agent`: arguments, exit codes and messages (live-server runs are in test_live.py)."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deployd.cli.main import main
from deployd.publishers import new_token
from tests.client.faultserver import closed_port_url, serve

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(tmp_path, signer):
    """A trusted key file, a bundle, a cache dir and an output file, as an operator would have."""
    key = signer.write_public(tmp_path)
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(signer.bundle(release="1.0.0", sequence=2).to_bytes())
    return {
        "key": key,
        "bundle": bundle,
        "cache": tmp_path / "cache",
        "out": tmp_path / "out" / "spec.json",
        "tmp": tmp_path,
    }


def agent(site, *extra: str) -> list[str]:
    # These sites have no license naming a channel, so they name theirs.
    return [
        "agent",
        "--trust-key",
        str(site["key"]),
        "--cache-dir",
        str(site["cache"]),
        "--channel",
        "stable",
        *extra,
    ]


def offline_once(site, *extra):
    return agent(
        site, "--offline-spec", str(site["bundle"]), "--write", str(site["out"]), "--once", *extra
    )


def test_once_applies_then_reports_unchanged(site, capsys):
    assert main(offline_once(site)) == 0
    assert capsys.readouterr().out == "applied release 1.0.0 (channel stable, sequence 2)\n"
    assert json.loads(site["out"].read_text())["metadata"]["release"] == "1.0.0"
    assert main(offline_once(site)) == 0
    assert capsys.readouterr().out.startswith("unchanged: release 1.0.0")


def test_once_merges_user_values_and_a_custom_resource(site, capsys):
    (site["tmp"] / "user.yaml").write_text("global: {host: https://h, size: small}\n")
    (site["tmp"] / "cr.yaml").write_text(
        "apiVersion: apps.wandb.com/v1\nkind: WeightsAndBiases\nmetadata: {name: wandb}\n"
        "spec:\n  chart: {path: /charts/local}\n  values: {global: {size: large}}\n"
    )
    args = offline_once(
        site, "--user-values", str(site["tmp"] / "user.yaml"), "--cr", str(site["tmp"] / "cr.yaml")
    )
    assert main(args) == 0
    written = json.loads(site["out"].read_text())
    assert written["chart"] == {"path": "/charts/local"}
    assert written["values"]["global"] == {"host": "https://h", "size": "large"}


def test_once_fails_clearly_without_a_server_or_a_cache(site, capsys):
    code = main(agent(site, "--server", closed_port_url(), "--write", str(site["out"]), "--once"))
    err = capsys.readouterr().err
    assert code == 1 and "deployd: error: cannot reach the server" in err
    assert "no good spec is held" in err
    assert not site["out"].exists()


def test_once_with_a_warm_cache_and_the_server_down_says_it_used_the_cache(site, capsys):
    assert main(offline_once(site)) == 0
    capsys.readouterr()
    code = main(agent(site, "--server", closed_port_url(), "--write", str(site["out"]), "--once"))
    captured = capsys.readouterr()
    assert code == 3
    assert captured.out.startswith("unchanged: release 1.0.0")
    assert "used the last good spec" in captured.err


def test_once_reports_a_failing_reconciler(site, capsys):
    code = main(
        agent(site, "--offline-spec", str(site["bundle"]), "--exec", "sh -c 'exit 4'", "--once")
    )
    assert code == 1
    assert "deployd: error: reconcile command sh exited with status 4" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["agent", "--offline-spec", "b", "--write", "o"],  # no --trust-key
        ["agent", "--trust-key", "k", "--write", "o"],  # neither --server nor --offline-spec
        [
            "agent",
            "--trust-key",
            "k",
            "--server",
            "http://h",
            "--offline-spec",
            "b",
            "--write",
            "o",
        ],
        ["agent", "--trust-key", "k", "--server", "http://h"],  # no --exec / --write
        ["agent", "--trust-key", "k", "--server", "http://h", "--exec", "x", "--write", "o"],
        [
            "agent",
            "--trust-key",
            "k",
            "--server",
            "http://h",
            "--write",
            "o",
            "--cr",
            "a",
            "--cr-values",
            "b",
        ],
        ["agent", "--trust-key", "k", "--server", "http://h", "--write", "o", "--interval", "0"],
    ],
)
def test_bad_arguments_are_usage_errors(args, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2


@pytest.mark.parametrize("source", ["--server", "--offline-spec"])
def test_without_a_license_naming_a_channel_the_channel_must_be_named(
    site, capsys, monkeypatch, source
):
    monkeypatch.delenv("DEPLOYD_LICENSE", raising=False)
    where = closed_port_url() if source == "--server" else str(site["bundle"])
    args = ["agent", "--trust-key", str(site["key"]), "--cache-dir", str(site["cache"])]
    code = main([*args, source, where, "--write", str(site["out"]), "--once"])
    assert code == 1
    assert "say which channel to follow (--channel NAME)" in capsys.readouterr().err
    assert not site["out"].exists()


@pytest.mark.parametrize(
    "path", ["/api/v1/operator/channel", "/api/v1/operator/channel/release/1.2.0"]
)
def test_a_channel_url_as_server_is_refused_at_start_naming_the_base_url(
    site, fault_server, capsys, path
):
    code = main(agent(site, "--server", fault_server.url + path, "--write", "o", "--once"))
    err = capsys.readouterr().err
    assert code == 1
    assert f"--server takes the base URL of the deployd server: use '{fault_server.url}'" in err
    assert fault_server.requests == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--trust-key", "/nonexistent.pub"], "cannot read trusted key"),
        (["--license-file", "/nonexistent"], "cannot read license file"),
        (["--user-values", "/nonexistent.yaml"], "cannot read"),
        (["--ca-bundle", "/nonexistent.pem"], "CA certificates '/nonexistent.pem': cannot read"),
    ],
)
def test_bad_files_are_clear_errors(site, capsys, extra, message):
    code = main(agent(site, "--server", "https://h", "--write", "o", "--once", *extra))
    assert code == 1 and message in capsys.readouterr().err


@pytest.mark.parametrize("source", ["file", "env", "cr"])
def test_the_license_is_taken_from_its_sources(site, signer, fault_server, monkeypatch, source):
    bundle = signer.bundle(etag='"e"')
    fault_server.script(serve(bundle.body, bundle.signature, bundle.etag))
    extra: list[str] = []
    if source == "file":
        (site["tmp"] / "license").write_text("lic-from-file\n")
        extra = ["--license-file", str(site["tmp"] / "license")]
    elif source == "env":
        monkeypatch.setenv("DEPLOYD_LICENSE", "lic-from-env")
    else:
        (site["tmp"] / "cr.yaml").write_text(
            "apiVersion: v1\nkind: X\nspec: {values: {global: {license: lic-from-cr}}}\n"
        )
        extra = ["--cr", str(site["tmp"] / "cr.yaml")]
    if source != "env":
        monkeypatch.delenv("DEPLOYD_LICENSE", raising=False)
    args = agent(site, "--server", fault_server.url, "--write", str(site["out"]), "--once", *extra)
    assert main(args) == 0
    sent = fault_server.requests[0].headers["Authorization"].removeprefix("Basic ")
    assert base64.b64decode(sent).decode() == f"license:lic-from-{source}"
    assert f"lic-from-{source}" not in site["out"].read_text() or source == "cr"


def test_the_license_and_tokens_a_reconciler_echoes_are_masked_in_the_log(
    site, caplog, monkeypatch
):
    license = "lic-opaque-7d1e93"  # not JWT-shaped: masked because it is the agent's license
    token = new_token()
    monkeypatch.setenv("LEAKY_TOKEN", token)
    monkeypatch.delenv("DEPLOYD_LICENSE", raising=False)
    (site["tmp"] / "cr.yaml").write_text(f"global: {{license: {license}}}\n")
    command = site["tmp"] / "echo-spec.sh"
    command.write_text('#!/bin/sh\ncat\necho\necho "publishing with $LEAKY_TOKEN" >&2\n')
    command.chmod(0o755)
    caplog.set_level(logging.INFO)
    args = agent(
        site,
        "--offline-spec",
        str(site["bundle"]),
        "--cr-values",
        str(site["tmp"] / "cr.yaml"),
        "--exec",
        str(command),
        "--once",
    )
    assert main(args) == 0
    assert '"license": "***"' in caplog.text
    assert "echo-spec.sh (stderr): publishing with ***" in caplog.text
    assert license not in caplog.text and token not in caplog.text


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_the_agent_follows_new_bundles_until_sigterm(site, signer):
    def written_release():
        try:
            return json.loads(site["out"].read_text())["metadata"]["release"]
        except (OSError, ValueError):
            return None

    args = agent(
        site,
        "--offline-spec",
        str(site["bundle"]),
        "--write",
        str(site["out"]),
        "--interval",
        "0.05",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "deployd", *args],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert wait_for(lambda: written_release() == "1.0.0")
        site["bundle"].write_bytes(signer.bundle(release="1.1.0", sequence=3).to_bytes())
        assert wait_for(lambda: written_release() == "1.1.0")
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()  # also closes the pipes
    assert process.returncode == 0, err.decode()
    assert b"applied release 1.1.0" in err
