"""TLS to the server with a private CA, as behind a corporate proxy: --ca-bundle."""

from __future__ import annotations

import datetime
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from deployd.client.poller import Poller, PollOutcome
from tests.client.faultserver import FaultServer, serve


def _certificate(subject, issuer, key, signing_key, *, ca: bool):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(signing_key, hashes.SHA256())


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory):
    """A CA certificate file and a server certificate + key it signed for 127.0.0.1."""
    directory = tmp_path_factory.mktemp("tls")
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = _certificate("test CA", "test CA", ca_key, ca_key, ca=True)
    leaf = _certificate("127.0.0.1", "test CA", server_key, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(leaf.public_bytes(pem))
    (directory / "server.key").write_bytes(
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return directory


@pytest.fixture
def tls_server(private_ca, signer):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(private_ca / "server.pem", private_ca / "server.key")
    server = FaultServer(tls=context)
    bundle = signer.bundle(etag='"tls"')
    server.script(serve(bundle.body, bundle.signature, bundle.etag))
    yield server
    server.stop()


def test_a_server_behind_a_private_ca_is_trusted_with_the_ca_bundle(
    tls_server, private_ca, make_config
):
    config = make_config(
        server=tls_server.url, license="lic", channel="stable", ca_bundle=private_ca / "ca.pem"
    )
    with Poller(config) as poller:
        assert poller.poll_once().outcome is PollOutcome.UPDATED
    assert tls_server.url.startswith("https://")


def test_without_the_ca_bundle_the_certificate_is_refused(tls_server, make_config):
    with Poller(make_config(server=tls_server.url, license="lic", channel="stable")) as poller:
        result = poller.poll_once()
    assert (result.outcome, result.reason) == (PollOutcome.UNAVAILABLE, "tls")
    assert "certificate" in result.message.lower()
    assert not tls_server.requests  # the license never left the client
