"""`deployd verify`: the checklist against the real server, a TLS server behind a private CA,
and each way a setup can be broken; exit codes and the JSON report."""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import pytest
import yaml

from deployd.cli.main import main
from tests.client.faultserver import (
    FaultServer,
    answer_json,
    by_path,
    clock_off,
    closed_port_url,
    serve,
)
from tests.support.tls import PrivateCA

CHECKS = [
    "url",
    "dns",
    "tcp",
    "tls",
    "clock",
    "license",
    "license-server",
    "channel-spec",
    "merge",
    "reconciler",
]
VALID = {"valid": True, "code": "valid", "message": "the license is valid", "claims": {}}


def verify(*args: str) -> list[str]:
    return ["verify", *args, "--exec", sys.executable, "--json"]


def run_json(capsys, args: list[str]) -> tuple[int, dict[str, dict]]:
    code = main(args)
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is (code == 0)
    return code, {check["name"]: check for check in report["checks"]}


def statuses(checks: dict[str, dict]) -> dict[str, str]:
    return {name: check["status"] for name, check in checks.items()}


@pytest.fixture
def live_site(live, tmp_path):
    license_file = tmp_path / "license.jwt"
    license_file.write_text(live.license)
    return ["--license-file", str(license_file), "--trust-key", str(live.signing_key)]


# --- against the real server -------------------------------------------------------------------


def test_a_working_setup_passes_every_check(live, live_site, capsys):
    code = main(verify("--server", live.url, *live_site))
    out = capsys.readouterr().out
    assert live.license not in out
    checks = {check["name"]: check for check in json.loads(out)["checks"]}
    assert code == 0
    assert list(checks) == CHECKS
    assert set(statuses(checks).values()) == {"pass"}
    assert checks["channel-spec"]["details"]["channel"] == "stable"
    assert checks["license"]["details"]["customer"] == "acme"
    assert checks["reconciler"]["details"]["command"] == sys.executable


def test_the_text_report_has_a_line_per_check_and_a_total(live, live_site, capsys, tmp_path):
    code = main(["verify", "--server", live.url, *live_site, "--write", str(tmp_path / "o.yaml")])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [line.split()[:2] for line in lines[:-1]] == [["PASS", name] for name in CHECKS]
    assert lines[-1] == "10 checks: 10 passed, 0 failed, 0 skipped"


def test_the_merge_shows_the_chart_and_values_the_agent_would_apply(
    live, live_site, capsys, tmp_path
):
    cr = tmp_path / "cr.yaml"
    cr.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "apps.wandb.com/v1",
                "kind": "WeightsAndBiases",
                "spec": {
                    "chart": {"path": "/charts/local", "version": "9.9.9"},
                    "values": {"global": {"size": "large"}},
                },
            }
        )
    )
    code, checks = run_json(capsys, verify("--server", live.url, *live_site, "--cr", str(cr)))
    assert code == 0
    merge = checks["merge"]
    assert merge["details"]["chart"] == {"path": "/charts/local", "version": "9.9.9"}
    assert "global" in merge["details"]["values"]
    assert "chart from the custom resource" in merge["reason"]


def test_an_untrusted_signing_key_fails_the_spec_check(live, other_signer, capsys, tmp_path):
    license_file = tmp_path / "license.jwt"
    license_file.write_text(live.license)
    args = [
        "--license-file",
        str(license_file),
        "--trust-key",
        str(other_signer.write_public(tmp_path)),
    ]
    code, checks = run_json(capsys, verify("--server", live.url, *args))
    assert code == 1
    spec = checks["channel-spec"]
    assert (spec["status"], spec["details"]["refusal"]) == ("fail", "unknown_key")
    assert "--trust-key" in spec["hint"]
    assert checks["merge"]["status"] == "skip"


def test_an_expired_license_fails_offline_and_with_the_server(live, capsys, tmp_path):
    license_file = tmp_path / "license.jwt"
    license_file.write_text(live.world.license(expires_in=timedelta(days=-2)))
    args = ["--license-file", str(license_file), "--trust-key", str(live.signing_key)]
    code, checks = run_json(capsys, verify("--server", live.url, *args))
    assert code == 1
    assert checks["license"]["status"] == "fail"
    assert "expired at" in checks["license"]["reason"]
    assert checks["license"]["details"]["days_left"] < 0
    assert checks["license-server"]["status"] == "fail"
    assert "(expired)" in checks["license-server"]["reason"]


# --- refusals on the way to the server ---------------------------------------------------------


def test_an_api_url_instead_of_the_base_url_fails_and_skips_the_network(live, live_site, capsys):
    code, checks = run_json(
        capsys, verify("--server", live.url + "/api/v1/operator/channel", *live_site)
    )
    assert code == 1
    assert checks["url"]["status"] == "fail"
    assert f"use '{live.url}'" in checks["url"]["reason"]
    for name in ("dns", "tcp", "tls", "clock", "license-server", "channel-spec", "merge"):
        assert checks[name]["status"] == "skip", name
    assert checks["tcp"]["reason"] == "not checked: dns did not pass"


def test_a_name_that_does_not_resolve_fails_the_dns_check(live_site, capsys):
    code, checks = run_json(capsys, verify("--server", "https://deployd.invalid", *live_site))
    assert code == 1
    assert checks["dns"]["status"] == "fail"
    assert "cannot resolve deployd.invalid" in checks["dns"]["reason"]
    assert checks["tcp"]["status"] == "skip"


def test_a_closed_port_fails_the_tcp_check(live_site, capsys):
    code, checks = run_json(capsys, verify("--server", closed_port_url(), *live_site))
    assert code == 1
    assert (checks["dns"]["status"], checks["tcp"]["status"]) == ("pass", "fail")
    assert "cannot connect" in checks["tcp"]["reason"]
    assert checks["tls"]["status"] == "skip"


# --- TLS, clock and spec against a scripted server ---------------------------------------------


@pytest.fixture(scope="module")
def private_ca():
    return PrivateCA.generate()


@pytest.fixture
def site_files(tmp_path, signer):
    license_file = tmp_path / "license.txt"
    license_file.write_text("not-a-jwt-but-the-server-decides")
    return [
        "--license-file",
        str(license_file),
        "--channel",
        "stable",
        "--trust-key",
        str(signer.write_public(tmp_path)),
    ]


def _tls_server(private_ca, tmp_path, behaviour, *, expired=False):
    server = FaultServer(tls=private_ca.server_context(tmp_path / "tls", expired=expired))
    server.script(by_path({"/api/v1/licenses/validate": answer_json(200, VALID)}, behaviour))
    return server


@pytest.fixture
def tls_server(private_ca, tmp_path, signer):
    bundle = signer.bundle()
    server = _tls_server(private_ca, tmp_path, serve(bundle.body, bundle.signature))
    yield server
    server.stop()


def test_a_server_behind_the_sites_ca_passes_with_the_ca_given(
    tls_server, private_ca, site_files, capsys, tmp_path
):
    ca_dir = tmp_path / "ca-certs"
    private_ca.write(ca_dir / "corporate.crt")
    code, checks = run_json(
        capsys, verify("--server", tls_server.url, *site_files, "--ca-bundle", str(ca_dir))
    )
    assert statuses(checks)["tls"] == "pass"
    assert checks["tls"]["details"]["issuer"] == "CN=test CA"
    assert checks["channel-spec"]["status"] == "pass"
    assert checks["license"]["status"] == "fail"  # not a JWT: the only failure
    assert [n for n, s in statuses(checks).items() if s != "pass"] == ["license"]
    assert code == 1


def test_custom_ca_certs_in_the_custom_resource_are_used(
    tls_server, private_ca, site_files, capsys, tmp_path
):
    cr_values = tmp_path / "cr-values.yaml"
    cr_values.write_text(yaml.safe_dump({"customCACerts": [private_ca.pem]}))
    _, checks = run_json(
        capsys, verify("--server", tls_server.url, *site_files, "--cr-values", str(cr_values))
    )
    assert checks["tls"]["status"] == "pass"
    assert "customCACerts[0]" in checks["tls"]["reason"]


def test_a_certificate_from_an_unknown_ca_fails_the_tls_check(tls_server, site_files, capsys):
    code, checks = run_json(capsys, verify("--server", tls_server.url, *site_files))
    assert code == 1
    tls = checks["tls"]
    assert tls["status"] == "fail"
    assert "not trusted" in tls["reason"] and "CN=test CA" in tls["reason"]
    assert "--ca-bundle" in tls["hint"] and "customCACerts" in tls["hint"]
    assert checks["clock"]["status"] == checks["channel-spec"]["status"] == "skip"
    assert not tls_server.requests  # the license was never sent


def test_an_expired_server_certificate_fails_the_tls_check(
    private_ca, signer, site_files, capsys, tmp_path
):
    bundle = signer.bundle()
    server = _tls_server(private_ca, tmp_path, serve(bundle.body, bundle.signature), expired=True)
    try:
        ca = str(private_ca.write(tmp_path / "ca.pem"))
        _, checks = run_json(capsys, verify("--server", server.url, *site_files, "--ca-bundle", ca))
    finally:
        server.stop()
    assert checks["tls"]["status"] == "fail"
    assert "certificate expired at" in checks["tls"]["reason"]
    assert checks["tls"]["hint"] == "renew the server's certificate"


def test_a_bad_custom_ca_certificate_is_named(tls_server, private_ca, site_files, capsys, tmp_path):
    cr_values = tmp_path / "cr-values.yaml"
    cr_values.write_text(yaml.safe_dump({"customCACerts": [private_ca.pem, "-----BEGIN X"]}))
    _, checks = run_json(
        capsys, verify("--server", tls_server.url, *site_files, "--cr-values", str(cr_values))
    )
    assert checks["tls"]["status"] == "fail"
    assert "customCACerts[1]" in checks["tls"]["reason"]


@pytest.mark.parametrize("offset", [-3600, 3600])
def test_a_clock_off_from_the_servers_date_fails_the_clock_check(
    signer, site_files, capsys, offset
):
    bundle = signer.bundle()
    server = FaultServer()
    server.script(clock_off(offset, serve(bundle.body, bundle.signature)))
    try:
        _, checks = run_json(capsys, verify("--server", server.url, *site_files))
    finally:
        server.stop()
    clock = checks["clock"]
    assert clock["status"] == "fail"
    assert ("behind" if offset > 0 else "ahead of") in clock["reason"]
    assert abs(clock["details"]["skew_seconds"] + offset) < 600
    assert "NTP" in clock["hint"]


def test_a_spec_of_another_channel_fails_the_spec_check(signer, site_files, capsys):
    bundle = signer.bundle(channel="beta")
    server = FaultServer()
    server.script(serve(bundle.body, bundle.signature))
    try:
        _, checks = run_json(capsys, verify("--server", server.url, *site_files))
    finally:
        server.stop()
    spec = checks["channel-spec"]
    assert (spec["status"], spec["details"]["refusal"]) == ("fail", "wrong_channel")
    assert "'beta', not the expected 'stable'" in spec["reason"]


# --- the reconciler ------------------------------------------------------------------------------


def test_helm_not_found_is_a_failure_with_a_hint(live, live_site, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    code = main(["verify", "--server", live.url, *live_site, "--json"])
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert code == 1
    assert checks["reconciler"]["reason"] == "helm not found on the PATH"
    assert "--exec" in checks["reconciler"]["hint"]


def test_helm_found_is_asked_its_version(live, live_site, capsys, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helm = bin_dir / "helm"
    helm.write_text("#!/bin/sh\necho v3.15.2+gc4e37b3\n")
    helm.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    code = main(["verify", "--server", live.url, *live_site])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "helm v3.15.2+gc4e37b3" in out


def test_an_exec_command_that_does_not_exist_fails(live, live_site, capsys):
    code = main(["verify", "--server", live.url, *live_site, "--exec", "no-such-reconciler --x"])
    assert code == 1
    assert "command no-such-reconciler not found" in capsys.readouterr().out
