"""Mutation fuzzing of the two parsers that take attacker-controlled input: channel files and
licenses. Random text is covered in tests/test_channels.py and tests/test_licenses.py; these start
from valid input and change a little, which reaches the deeper checks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deployd.channels import channel_from_document, parse_channel_text
from deployd.errors import ChannelValidationError, LicenseError
from deployd.keyfiles import KEY_ID, write_key_pair
from deployd.licensing.keyring import KeyRing, generate_private_key
from deployd.licensing.tokens import LicenseVerifier
from deployd.specs.signing import SpecSigner, public_jwk
from tests.support import jwt_forge
from tests.support.factories import CHANNEL_YAML

SCHEMA = json.loads(
    (
        Path(__file__).resolve().parents[1] / "deployd/channels/schema/channel.schema.json"
    ).read_text()
)
VALID_CHANNEL = CHANNEL_YAML.format(name="stable")
BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@st.composite
def mutated(draw, text: str, alphabet: st.SearchStrategy[str]) -> str:
    """`text` with a few characters deleted, inserted or replaced, or lines swapped."""
    chars = list(text)
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, max(0, len(chars) - 1)))
        action = draw(st.sampled_from(["delete", "insert", "replace", "swap lines"]))
        if action == "delete" and chars:
            del chars[position]
        elif action == "insert":
            chars.insert(position, draw(alphabet))
        elif action == "replace" and chars:
            chars[position] = draw(alphabet)
        else:
            lines = "".join(chars).split("\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            chars = list("\n".join(lines))
    return "".join(chars)


YAML_CHARACTERS = (
    st.sampled_from(list("-:[]{}&*!|>'\"#%@,? \n\t.0123456789abcxyz")) | st.characters()
)


@settings(deadline=None)
@given(mutated(VALID_CHANNEL, YAML_CHARACTERS))
def test_a_mutated_channel_file_is_accepted_whole_or_refused_with_lines(text):
    lines = text.count("\n") + 1
    try:
        channel = parse_channel_text(text, filename="stable.yaml", expected_name="stable")
    except ChannelValidationError as e:
        assert e.problems
        assert all(p.line is None or 1 <= p.line <= lines + 1 for p in e.problems), e.problems
        return
    # What the server accepts, the published JSON Schema (editors, CI) accepts too, and the
    # document it keeps compiles to the same channel again.
    jsonschema.validate(channel.document, SCHEMA)
    assert channel_from_document(channel.document, filename="stable.yaml") == channel


@pytest.fixture(scope="module")
def ring(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    private = generate_private_key()
    write_key_pair(private, directory, "test")
    return private, KeyRing.from_dir(directory)


def test_a_mutated_license_verifies_only_with_its_original_claims(ring):
    private, keyring = ring
    verifier = LicenseVerifier(keyring)
    original = jwt.encode(jwt_forge.claims(), private, algorithm="EdDSA", headers={"kid": "test"})
    claims = verifier.verify(original).claims

    @settings(deadline=None)
    @given(mutated(original, st.sampled_from(BASE64URL + ".")))
    def check(token):
        try:
            verified = verifier.verify(token)
        except LicenseError:
            return
        # Base64 has spare bits in a last character: such a twin is the same license, never
        # another one.
        assert verified.claims == claims

    check()


@settings(deadline=None)
@given(
    kid=st.text(max_size=80) | st.sampled_from(["../test", "test/../../etc/passwd", "", " test"])
)
def test_an_injected_key_id_is_only_ever_looked_up_never_followed(ring, kid):
    private, keyring = ring
    token = jwt.encode(jwt_forge.claims(), private, algorithm="EdDSA", headers={"kid": kid})
    try:
        LicenseVerifier(keyring).verify(token)
    except LicenseError as e:
        assert e.code in {"unknown_key", "malformed"}, e.code
        if not KEY_ID.fullmatch(kid) and len(kid) > 2:
            assert kid not in e.message
    else:
        assert kid == "test"


@pytest.mark.parametrize("header", ["jwk", "jku", "x5u", "x5c"])
def test_keys_offered_in_the_header_are_ignored(ring, header):
    private, keyring = ring
    attacker = generate_private_key()
    offered = {
        "jwk": public_jwk("test", attacker.public_key(), role="license"),
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
        "x5c": ["MIIBattacker"],
    }[header]
    token = jwt.encode(
        jwt_forge.claims(), attacker, algorithm="EdDSA", headers={"kid": "test", header: offered}
    )
    with pytest.raises(LicenseError) as refused:
        LicenseVerifier(keyring).verify(token)
    assert refused.value.code == "bad_signature"
    assert not re.search("attacker", refused.value.message)


def test_a_jwt_signed_with_the_response_signing_key_is_no_license(ring, tmp_path):
    # Cross-JWT confusion: the key that signs specs is never a license key, even under its own
    # key id, because license keys come only from the license key directory.
    _, keyring = ring
    signer = SpecSigner.dev_key(tmp_path)
    token = jwt.encode(
        jwt_forge.claims(), signer.private_key, algorithm="EdDSA", headers={"kid": signer.kid}
    )
    with pytest.raises(LicenseError) as refused:
        LicenseVerifier(keyring).verify(token)
    assert refused.value.code == "unknown_key"
