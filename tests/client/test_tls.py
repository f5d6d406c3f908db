"""TLS to the server with a private CA, as behind a corporate proxy: the CA certificates a site
gives (a PEM file, a directory of *.crt as a mounted ConfigMap, customCACerts in the
custom-resource values), each tried against a real TLS server."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from deployd.cli.main import main
from deployd.client.poller import Poller, PollOutcome
from deployd.client.trust import load_ca_trust
from deployd.errors import ConfigError
from tests.client.faultserver import FaultServer, serve
from tests.support.tls import PrivateCA


@pytest.fixture(scope="module")
def private_ca():
    return PrivateCA.generate()


@pytest.fixture
def tls_server(private_ca, signer, tmp_path):
    server = FaultServer(tls=private_ca.server_context(tmp_path / "server-tls"))
    bundle = signer.bundle(etag='"tls"')
    server.script(serve(bundle.body, bundle.signature, bundle.etag))
    yield server
    server.stop()


def _poll(make_config, server, ca_trust):
    config = make_config(server=server.url, license="lic", channel="stable", ca_trust=ca_trust)
    with Poller(config) as poller:
        return poller.poll_once()


def test_a_server_behind_a_private_ca_is_trusted_with_the_ca_bundle(
    tls_server, private_ca, make_config, tmp_path
):
    trust = load_ca_trust([private_ca.write(tmp_path / "ca.pem")])
    assert _poll(make_config, tls_server, trust).outcome is PollOutcome.UPDATED
    assert tls_server.url.startswith("https://")


def test_without_the_ca_bundle_the_certificate_is_refused(tls_server, make_config):
    result = _poll(make_config, tls_server, None)
    assert (result.outcome, result.reason) == (PollOutcome.UNAVAILABLE, "tls")
    assert "certificate" in result.message.lower()
    assert not tls_server.requests  # the license never left the client


def test_a_directory_of_crt_files_is_trusted_like_a_mounted_configmap(
    tls_server, private_ca, make_config, tmp_path
):
    directory = tmp_path / "ca-certs"
    PrivateCA.generate("some other CA").write(directory / "other.crt")
    private_ca.write(directory / "corporate.crt")
    (directory / "README").write_text("not a certificate, and not named *.crt: ignored\n")
    trust = load_ca_trust([directory])
    assert trust is not None and len(trust.sources) == 2
    assert _poll(make_config, tls_server, trust).outcome is PollOutcome.UPDATED


def test_custom_ca_certs_in_the_custom_resource_values_are_trusted(
    tls_server, private_ca, make_config
):
    values = {"customCACerts": [PrivateCA.generate("unrelated").pem, private_ca.pem]}
    trust = load_ca_trust([], values)
    assert trust is not None and trust.sources == ("customCACerts[0]", "customCACerts[1]")
    assert _poll(make_config, tls_server, trust).outcome is PollOutcome.UPDATED


def test_the_site_cas_are_added_to_the_public_ones_not_put_in_their_place(private_ca):
    trust = load_ca_trust([], {"customCACerts": [private_ca.pem]})
    assert trust is not None
    subjects = [dict(x[0] for x in ca["subject"]) for ca in trust.ssl_context().get_ca_certs()]
    assert {"commonName": "test CA"} in subjects
    assert len(subjects) > 10  # certifi's public CAs are still there


def test_the_agent_trusts_custom_ca_certs_from_its_cr_values_file(
    tls_server, private_ca, signer, tmp_path, capsys
):
    cr_values = tmp_path / "cr-values.yaml"
    cr_values.write_text(yaml.safe_dump({"customCACerts": [private_ca.pem]}))
    args = [
        "agent",
        "--server",
        tls_server.url,
        "--channel",
        "stable",
        "--trust-key",
        str(signer.write_public(tmp_path)),
        "--cr-values",
        str(cr_values),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--write",
        str(tmp_path / "out.json"),
        "--no-report",
        "--once",
    ]
    assert main(args) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "out.json").read_text())["metadata"]["channel"] == "stable"


def test_the_agent_names_the_bad_entry_of_custom_ca_certs(private_ca, signer, tmp_path, capsys):
    cr_values = tmp_path / "cr-values.yaml"
    broken = private_ca.pem.replace("\n", "\n!!", 2)
    cr_values.write_text(yaml.safe_dump({"customCACerts": [private_ca.pem, broken]}))
    args = [
        "agent",
        "--server",
        "https://127.0.0.1:9",
        "--channel",
        "stable",
        "--trust-key",
        str(signer.write_public(tmp_path)),
        "--cr-values",
        str(cr_values),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--write",
        str(tmp_path / "out.json"),
        "--once",
    ]
    assert main(args) == 1
    assert "customCACerts[1]: not a valid certificate" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        (lambda d: (d / "empty").mkdir(), "holds no *.crt file"),
        (lambda d: (d / "notpem.crt").write_text("hello\n"), "no PEM certificate"),
        (lambda d: None, "cannot read"),
    ],
    ids=["empty-directory", "not-pem", "missing-file"],
)
def test_unusable_ca_files_are_refused_naming_the_file(tmp_path, setup, expected):
    setup(tmp_path)
    path = tmp_path / "empty" if expected.startswith("holds") else tmp_path / "notpem.crt"
    with pytest.raises(ConfigError, match=re.escape(expected)) as caught:
        load_ca_trust([path])
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("value", ["-----BEGIN CERTIFICATE-----", [1, 2], {"a": "b"}])
def test_custom_ca_certs_must_be_a_list_of_strings(value):
    with pytest.raises(ConfigError, match="customCACerts"):
        load_ca_trust([], {"customCACerts": value})


def test_the_bad_certificate_of_a_bundle_is_named_by_its_place(private_ca, tmp_path):
    path = tmp_path / "bundle.pem"
    path.write_text(private_ca.pem + private_ca.pem.replace("\n", "\n%%", 3))
    with pytest.raises(ConfigError, match=r"bundle\.pem \(certificate 2\): not a valid"):
        load_ca_trust([path])


def test_no_ca_given_is_no_extra_trust():
    assert load_ca_trust([], {"global": {}}) is None
