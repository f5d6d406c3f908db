"""Client configuration: limits, trusted keys (PEM and JWKS), where the license comes from."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from deployd.client.config import ClientConfig, load_trusted_keys
from deployd.client.licensing import find_license, license_channel
from deployd.errors import ConfigError, KeyFileError
from deployd.specs.signing import public_jwk


def config(signer, tmp_path, **overrides):
    fields = {
        "server": "https://deployd.example.com",
        "trusted_keys": signer.trusted,
        "channel": "stable",
    }
    fields.update(overrides)
    return ClientConfig(cache_dir=tmp_path / "cache", **fields)


def test_a_minimal_config_has_safe_defaults(signer, tmp_path):
    c = config(signer, tmp_path)
    assert c.poll_interval == 300 and c.read_timeout == 30 and c.max_body_bytes > 0


def test_the_license_stays_out_of_repr(signer, tmp_path):
    assert "s3cret" not in repr(config(signer, tmp_path, license="s3cret"))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"trusted_keys": {}}, "trusted"),
        ({"server": None}, "--server"),
        ({"server": "ftp://x"}, "http"),
        ({"server": "https://"}, "http"),
        ({"server": "https://h/?x=1"}, "query"),
        ({"server": "https://user:pw@h"}, "credentials"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"read_timeout": -1}, "read_timeout"),
        ({"max_body_bytes": 0}, "max_body_bytes"),
        ({"backoff_base": 10, "backoff_ceiling": 1}, "backoff_ceiling"),
        ({"interval_jitter": 1.0}, "interval_jitter"),
        ({"license": "two words"}, "printable ASCII"),
        ({"license": "lïcense"}, "printable ASCII"),
        ({"license": ""}, "printable ASCII"),
    ],
)
def test_bad_configs_are_refused(signer, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        config(signer, tmp_path, **overrides)


LICENSE_FOR_BETA = "eyJhbGciOiJFZERTQSJ9.eyJjaGFubmVsIjoiYmV0YSJ9.c2ln"  # channel: beta


@pytest.mark.parametrize(
    ("license", "channel", "expected"),
    [
        (LICENSE_FOR_BETA, None, "beta"),
        (LICENSE_FOR_BETA, "stable", "stable"),
        ("opaque-license", "stable", "stable"),
        (None, "stable", "stable"),
    ],
)
def test_the_expected_channel_is_the_configured_one_else_the_licenses(
    signer, tmp_path, license, channel, expected
):
    c = config(signer, tmp_path, license=license, channel=channel)
    assert c.expected_channel == expected


@pytest.mark.parametrize("license", [None, "opaque-license"])
@pytest.mark.parametrize("source", ["server", "offline_spec"])
def test_without_a_license_naming_a_channel_the_channel_is_required(
    signer, tmp_path, license, source
):
    where = {"server": None, source: "https://h" if source == "server" else tmp_path / "b.json"}
    with pytest.raises(ConfigError, match=r"--channel NAME"):
        config(signer, tmp_path, license=license, channel=None, **where)


@pytest.mark.parametrize(
    ("server", "base"),
    [
        ("http://host:8000/api/v1/operator/channel", "http://host:8000"),
        ("http://host:8000/api/v1/operator/channel/", "http://host:8000"),
        ("https://host/api/v1/operator/channel/release/1.2.0", "https://host"),
        ("https://host/deployd/api/v1", "https://host/deployd"),
    ],
)
def test_a_channel_url_as_server_names_the_base_url_to_use(signer, tmp_path, server, base):
    with pytest.raises(ConfigError) as refused:
        config(signer, tmp_path, server=server)
    assert f"use {base!r}" in refused.value.message
    assert "base URL" in refused.value.message


@pytest.mark.parametrize(
    "server", ["https://host", "https://host/", "https://host/deployd", "https://host/apis/v1"]
)
def test_base_urls_are_taken(signer, tmp_path, server):
    assert config(signer, tmp_path, server=server).server == server


def test_offline_mode_needs_no_server(signer, tmp_path):
    assert config(signer, tmp_path, server=None, offline_spec=tmp_path / "b.json").server is None


@pytest.mark.parametrize(
    ("server", "clear"),
    [("http://deployd.example.com", True), ("http://127.0.0.1:8000", False), ("https://x", False)],
)
def test_plain_http_to_a_remote_host_is_noticed(signer, tmp_path, server, clear):
    assert config(signer, tmp_path, server=server, license="l").sends_license_in_clear is clear


# --- trusted keys -------------------------------------------------------------------------------


def test_pem_keys_are_named_by_their_file_stem(signer, other_signer, tmp_path):
    keys = load_trusted_keys([signer.write_public(tmp_path), other_signer.write_public(tmp_path)])
    assert set(keys) == {signer.kid, other_signer.kid}


def test_a_jwks_contributes_only_its_spec_keys(signer, tmp_path):
    license_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    jwks = {
        "keys": [
            public_jwk("lic", license_key, role="license"),
            public_jwk(signer.kid, signer.signer.public_key, role="spec"),
        ]
    }
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    keys = load_trusted_keys([tmp_path / "jwks.json"])
    assert list(keys) == [signer.kid]
    assert keys[signer.kid].public_bytes_raw() == signer.signer.public_key.public_bytes_raw()


def _write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content) if isinstance(content, str) else path.write_bytes(content)
    return path


EC_PEM = (
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("p256.pub", EC_PEM, "Ed25519"),
        ("junk.pub", "not a key", "PEM"),
        ("bad id!.pub", "x", "PEM|key id"),
        ("j.json", "{not json", "JSON"),
        ("j.json", '{"keys": {}}', "'keys' list"),
        ("j.json", '{"keys": []}', "no key"),
        ("j.json", '{"keys": [{"deployd_role": "spec", "kty": "OKP", "crv": "Ed25519"}]}', "kid"),
        ("j.json", '{"keys": [{"deployd_role": "spec", "kid": "k", "kty": "EC"}]}', "Ed25519"),
        (
            "j.json",
            '{"keys": [{"deployd_role": "spec", "kid": "k", "kty": "OKP", "crv": "Ed25519",'
            ' "x": "AAAA"}]}',
            "invalid 'x'",
        ),
    ],
)
def test_unusable_key_files_are_refused(tmp_path, name, content, message):
    with pytest.raises(KeyFileError, match=message):
        load_trusted_keys([_write(tmp_path, name, content)])


def test_a_missing_key_file_or_no_file_is_refused(tmp_path):
    with pytest.raises(KeyFileError, match="cannot read"):
        load_trusted_keys([tmp_path / "absent.pub"])
    with pytest.raises(KeyFileError, match="no trusted"):
        load_trusted_keys([])


def test_one_key_id_cannot_name_two_keys(signer, tmp_path):
    from tests.client.specs import SpecKey

    first = signer.write_public(tmp_path)
    (tmp_path / "other").mkdir()
    second = SpecKey.generate(signer.kid).write_public(tmp_path / "other")
    with pytest.raises(KeyFileError, match="already trusted"):
        load_trusted_keys([first, second])
    assert len(load_trusted_keys([first, first])) == 1


# --- license sources ----------------------------------------------------------------------------


@pytest.fixture
def sources(tmp_path):
    (tmp_path / "license").write_text("from-file\n")
    return {
        "configured": "from-config",
        "license_file": tmp_path / "license",
        "environ": {"DEPLOYD_LICENSE": "from-env"},
        "cr_values": {"global": {"license": "from-cr"}},
        "user_values": {"global": {"license": "from-user"}},
    }


@pytest.mark.parametrize(
    ("present", "value", "source"),
    [
        (
            ["configured", "license_file", "environ", "cr_values", "user_values"],
            "from-config",
            "configuration",
        ),
        (["license_file", "environ", "cr_values", "user_values"], "from-file", "license file"),
        (["environ", "cr_values", "user_values"], "from-env", "DEPLOYD_LICENSE"),
        (["cr_values", "user_values"], "from-cr", "global.license in the custom resource"),
        (["user_values"], "from-user", "global.license in the user-input values"),
    ],
)
def test_the_first_license_found_wins(sources, present, value, source):
    given = {name: sources[name] for name in present}
    given.setdefault("environ", {})
    choice = find_license(**given)
    assert (choice.value, choice.source) == (value, source)
    assert value not in repr(choice)


@pytest.mark.parametrize(
    "values",
    [None, {}, {"global": "x"}, {"global": {"license": ""}}, {"global": {"license": 5}}],
)
def test_no_license_anywhere_is_none(values):
    assert find_license(environ={"DEPLOYD_LICENSE": " "}, user_values=values) is None


@pytest.mark.parametrize(("content", "message"), [("", "empty"), (b"\xff\xfe", "UTF-8")])
def test_a_broken_license_file_is_an_error_not_a_fallthrough(tmp_path, content, message):
    path = _write(tmp_path, "license", content)
    with pytest.raises(ConfigError, match=message):
        find_license(license_file=path, environ={"DEPLOYD_LICENSE": "from-env"})
    with pytest.raises(ConfigError, match="cannot read"):
        find_license(license_file=tmp_path / "absent", environ={})


def test_the_license_channel_is_read_from_the_token_without_verifying():
    import base64

    def token(payload: bytes) -> str:
        return "e30." + base64.urlsafe_b64encode(payload).decode().rstrip("=") + ".sig"

    assert license_channel(token(b'{"channel": "beta", "sub": "acme"}')) == "beta"
    assert license_channel(token(b'{"sub": "acme"}')) is None
    assert license_channel(token(b"[1]")) is None
    assert license_channel(token(b"not json")) is None
    assert license_channel("opaque-license") is None
