"""License keys: the algorithm allow-list and the ring of public keys loaded from `keys/`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, rsa

from deployd.errors import ConfigError, KeyFileError, LicenseError
from deployd.keyfiles import load_private_key_file, write_key_pair
from deployd.licensing.keyring import (
    ALGORITHMS,
    KeyRing,
    RingKey,
    algorithm_for,
    generate_private_key,
)
from deployd.specs.signing import public_jwk


def write_public_key(path, private_key) -> None:
    path.write_bytes(
        private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory):
    """A key directory with one key pair per algorithm: kids `ed`, `ec` and `rsa`."""
    directory = tmp_path_factory.mktemp("keys")
    for kid, alg in [("ed", "EdDSA"), ("ec", "ES256"), ("rsa", "RS256")]:
        write_key_pair(generate_private_key(alg), directory, kid)
    return directory


@pytest.mark.parametrize("alg", list(ALGORITHMS))
def test_generated_key_signs_with_the_algorithm_asked_for(alg):
    key = generate_private_key(alg)
    assert isinstance(key.public_key(), ALGORITHMS[alg])
    assert algorithm_for(key.public_key(), source="new key") == alg


def test_new_rsa_keys_are_stronger_than_the_minimum():
    assert generate_private_key("RS256").key_size >= 3072


@pytest.mark.parametrize("alg", ["none", "HS256", "RS512", "ES384", "eddsa"])
def test_only_allowed_algorithms_can_be_generated(alg):
    with pytest.raises(ConfigError, match="unsupported algorithm"):
        generate_private_key(alg)


def test_ring_loads_every_public_key_with_its_stem_as_key_id(keys_dir):
    ring = KeyRing.from_dir(keys_dir)
    assert {kid: ring.get(kid).alg for kid in ("ed", "ec", "rsa")} == {
        "ed": "EdDSA",
        "ec": "ES256",
        "rsa": "RS256",
    }


def test_ring_never_reads_private_key_files(tmp_path):
    write_key_pair(generate_private_key(), tmp_path, "dev")
    (tmp_path / "junk.key").write_text("not a key at all")
    ring = KeyRing.from_dir(tmp_path)
    assert ring.get("dev").kid == "dev"
    with pytest.raises(LicenseError) as raised:
        ring.get("junk")
    assert raised.value.code == "unknown_key"


def test_an_empty_directory_is_an_empty_ring(tmp_path):
    assert KeyRing.from_dir(tmp_path).jwks() == []


def test_a_missing_directory_is_refused(tmp_path):
    with pytest.raises(KeyFileError, match="does not exist"):
        KeyRing.from_dir(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("name", "make_key", "complaint"),
    [
        ("weak.pub", lambda: rsa.generate_private_key(65537, 1024), "at least 2048"),
        ("p384.pub", lambda: ec.generate_private_key(ec.SECP384R1()), "only P-256"),
        ("ed448.pub", ed448.Ed448PrivateKey.generate, "must be Ed25519, EC P-256 or RSA"),
        ("not pem.pub", generate_private_key, "key id"),
    ],
)
def test_ring_refuses_an_unacceptable_key_naming_the_file(tmp_path, name, make_key, complaint):
    write_key_pair(generate_private_key(), tmp_path, "good")
    write_public_key(tmp_path / name, make_key())
    with pytest.raises(KeyFileError, match=complaint) as raised:
        KeyRing.from_dir(tmp_path)
    assert name in raised.value.message


def test_ring_refuses_a_file_that_is_not_a_pem_public_key(tmp_path):
    (tmp_path / "garbage.pub").write_text("-----BEGIN PUBLIC KEY-----\nnope\n")
    with pytest.raises(KeyFileError, match="garbage.pub: not a PEM public key"):
        KeyRing.from_dir(tmp_path)


@pytest.mark.parametrize("missing", [False, True], ids=["key-on-disk", "key-deleted"])
def test_a_retired_key_id_is_refused_as_retired(keys_dir, tmp_path, missing):
    directory = tmp_path / "keys"
    shutil.copytree(keys_dir, directory)
    if missing:
        (directory / "ed.pub").unlink()
    ring = KeyRing.from_dir(directory, retired=["ed"])
    with pytest.raises(LicenseError) as raised:
        ring.get("ed")
    assert (raised.value.code, raised.value.status) == ("key_retired", 401)
    assert ring.get("ec").kid == "ec"


def test_an_unknown_key_id_is_refused_by_name(keys_dir):
    with pytest.raises(LicenseError) as raised:
        KeyRing.from_dir(keys_dir).get("other")
    assert raised.value.code == "unknown_key"
    assert "'other'" in raised.value.message


@pytest.mark.parametrize(
    "kid",
    ["../ed", "ed/../../etc/passwd", "/etc/passwd", "ed\n", " ed", "", ".ed", "e" * 65, "é"],
)
def test_a_key_id_that_is_no_plain_key_id_is_unknown_without_being_echoed(keys_dir, kid):
    with pytest.raises(LicenseError) as raised:
        KeyRing.from_dir(keys_dir).get(kid)
    assert raised.value.code == "unknown_key"
    assert "not a valid key id" in raised.value.message


def test_lookups_never_touch_the_filesystem(keys_dir, tmp_path):
    directory = tmp_path / "keys"
    shutil.copytree(keys_dir, directory)
    ring = KeyRing.from_dir(directory)
    shutil.rmtree(directory)
    assert ring.get("rsa").alg == "RS256"
    with pytest.raises(LicenseError):
        ring.get("../keys/ed")


def test_jwks_lists_the_active_license_keys(keys_dir):
    jwks = KeyRing.from_dir(keys_dir, retired=["rsa"]).jwks()
    assert [(k["kid"], k["alg"], k["deployd_role"]) for k in jwks] == [
        ("ec", "ES256", "license"),
        ("ed", "EdDSA", "license"),
    ]


def test_a_ring_can_be_built_from_keys_in_memory():
    key = generate_private_key("ES256").public_key()
    ring = KeyRing([RingKey("mem", "ES256", key)])
    assert ring.get("mem").public_key is key


def test_the_committed_development_key_pair_matches():
    """keys/dev.key + keys/dev.pub: public on purpose (never for production), EdDSA, kid dev."""
    repo_keys = Path(__file__).resolve().parents[1] / "keys"
    ring = KeyRing.from_dir(repo_keys)
    private_key = load_private_key_file(repo_keys / "dev.key", warn=[])
    assert ring.get("dev").alg == "EdDSA"
    assert public_jwk("dev", private_key.public_key(), role="license") in ring.jwks()


REPO = Path(__file__).resolve().parents[1]


def test_the_dev_key_is_recognised_by_its_material_under_any_name(tmp_path):
    shutil.copy(REPO / "keys" / "dev.pub", tmp_path / "prod-2026.pub")
    write_key_pair(generate_private_key("EdDSA"), tmp_path, "own")
    ring = KeyRing.from_dir(tmp_path)
    assert ring.dev_key_ids() == ["prod-2026"]
    assert KeyRing.from_dir(tmp_path, retired=["prod-2026"]).dev_key_ids() == []
