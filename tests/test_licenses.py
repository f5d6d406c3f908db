"""Licenses: what verification accepts, what it refuses (with which code), and issuing them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from deployd.errors import BadRequestError, KeyFileError, LicenseError
from deployd.keyfiles import write_key_pair
from deployd.licensing.keyring import KeyRing, RingKey, generate_private_key
from deployd.licensing.tokens import (
    MAX_TOKEN_BYTES,
    LicenseVerifier,
    VerifiedLicense,
    issue_license,
    mask,
    parse_duration,
    token_hash,
)

DROP = object()  # a claim value meaning "leave this claim out"
ALG_OF = {"ed": "EdDSA", "ec": "ES256", "rsa": "RS256", "old": "EdDSA", "impostor": "EdDSA"}


class Keys:
    """Private keys by name; all but `impostor` have their public key in `directory`."""

    def __init__(self, directory):
        self.directory = directory
        self.private = {name: generate_private_key(alg) for name, alg in ALG_OF.items()}
        for name, key in self.private.items():
            if name != "impostor":
                write_key_pair(key, directory, name)

    def ring(self) -> KeyRing:
        return KeyRing.from_dir(self.directory, retired=["old"])

    def public_pem(self, name: str) -> bytes:
        return (self.directory / f"{name}.pub").read_bytes()


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> Keys:
    return Keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def verifier(keys) -> LicenseVerifier:
    return LicenseVerifier(keys.ring())


def claims(**changes) -> dict:
    """Good claims, valid for an hour, with `changes` applied (DROP removes a claim)."""
    now = int(time.time())
    base = {
        "iss": "deployd",
        "sub": "acme",
        "jti": "7f3a" * 8,
        "iat": now,
        "exp": now + 3600,
        "channel": "stable",
    }
    base.update(changes)
    return {name: value for name, value in base.items() if value is not DROP}


def signed(keys: Keys, payload: dict | None = None, *, key="ed", kid=None, **header) -> str:
    """A token signed by `key` with pyjwt, naming `kid` (default: the key's own name)."""
    return jwt.encode(
        claims() if payload is None else payload,
        keys.private[key],
        algorithm=header.pop("alg", ALG_OF[key]),
        headers={"kid": key if kid is None else kid, **header},
    )


def b64(data: bytes | dict) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hand_built(header: dict, payload: dict | bytes, sign=lambda signing_input: b"") -> str:
    """A token assembled by hand, for what pyjwt refuses to make."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def ed_signed(keys: Keys, payload: dict | bytes) -> str:
    """A token properly signed by key `ed`, with claims pyjwt would refuse to encode."""
    return hand_built({"alg": "EdDSA", "kid": "ed"}, payload, keys.private["ed"].sign)


def hmac_signed_with_public_key(keys: Keys, alg: str) -> str:
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    return hand_built(
        {"alg": alg, "kid": "ed", "typ": "JWT"},
        claims(),
        lambda data: hmac.new(keys.public_pem("ed"), data, digest).digest(),
    )


def flip(token: str, segment: int) -> str:
    """Change one character in the middle of a segment (the base64 stays canonical)."""
    parts = token.split(".")
    middle = len(parts[segment]) // 2
    char = parts[segment][middle]
    parts[segment] = (
        parts[segment][:middle] + ("A" if char != "A" else "B") + parts[segment][middle + 1 :]
    )
    return ".".join(parts)


def with_jwk_of_impostor(keys: Keys) -> str:
    impostor = keys.private["impostor"].public_key()
    raw = impostor.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return signed(
        keys,
        key="impostor",
        kid="ed",
        jku="http://attacker.invalid/jwks.json",
        x5u="http://attacker.invalid/cert.pem",
        jwk={"kty": "OKP", "crv": "Ed25519", "x": b64(raw)},
    )


# Every way a license can be bad, and the code it is refused with (CONTRACTS.md's check order).
BAD_TOKENS = {
    "none": (lambda k: None, "missing"),
    "empty": (lambda k: "", "missing"),
    "not a JWT": (lambda k: "hello-there", "malformed"),
    "not a string": (lambda k: 42, "malformed"),
    "two segments": (lambda k: signed(k).rsplit(".", 1)[0], "malformed"),
    "four segments": (lambda k: signed(k) + ".abc", "malformed"),
    "three segments of garbage": (lambda k: "bm90.anNvbg.c2ln", "malformed"),
    "non-ascii": (lambda k: "ë.ë.ë", "malformed"),
    "padding": (lambda k: "eyJ=.e30=.abc", "malformed"),
    "header not an object": (
        lambda k: hand_built({}, claims()).replace("e30", "WzFd", 1),
        "malformed",
    ),
    "100 KB of a valid token": (
        lambda k: signed(k, claims(filler="x" * 100_000)),
        "malformed",
    ),
    "just over the size cap": (lambda k: "a" * (MAX_TOKEN_BYTES + 1), "malformed"),
    "alg none, unsigned": (
        lambda k: hand_built({"alg": "none", "kid": "ed"}, claims()),
        "algorithm_not_allowed",
    ),
    "alg None, with a signature": (
        lambda k: hand_built({"alg": "None", "kid": "ed"}, claims(), lambda d: b"x" * 64),
        "algorithm_not_allowed",
    ),
    "HS256 keyed with the public key": (
        lambda k: hmac_signed_with_public_key(k, "HS256"),
        "algorithm_not_allowed",
    ),
    "HS384 keyed with the public key": (
        lambda k: hmac_signed_with_public_key(k, "HS384"),
        "algorithm_not_allowed",
    ),
    "HS512 keyed with the public key": (
        lambda k: hmac_signed_with_public_key(k, "HS512"),
        "algorithm_not_allowed",
    ),
    "PS256": (lambda k: signed(k, key="rsa", alg="PS256"), "algorithm_not_allowed"),
    "no alg": (lambda k: hand_built({"kid": "ed"}, claims()), "algorithm_not_allowed"),
    "alg a list": (
        lambda k: hand_built({"alg": ["EdDSA"], "kid": "ed"}, claims()),
        "algorithm_not_allowed",
    ),
    "no kid": (lambda k: hand_built({"alg": "EdDSA"}, claims()), "unknown_key"),
    "unknown kid": (lambda k: signed(k, kid="nobody"), "unknown_key"),
    "kid with ../": (lambda k: signed(k, kid="../keys/ed"), "unknown_key"),
    "kid an absolute path": (lambda k: signed(k, kid="/dev/zero"), "unknown_key"),
    "kid too long": (lambda k: signed(k, kid="e" * 65), "unknown_key"),
    "retired kid": (lambda k: signed(k, key="old"), "key_retired"),
    "RS256 header on an Ed25519 key": (
        lambda k: signed(k, key="rsa", kid="ed"),
        "algorithm_not_allowed",
    ),
    "ES256 header on an RSA key": (
        lambda k: signed(k, key="ec", kid="rsa"),
        "algorithm_not_allowed",
    ),
    "EdDSA header on an EC key": (
        lambda k: signed(k, key="ed", kid="ec"),
        "algorithm_not_allowed",
    ),
    "signed by another key with the same kid": (
        lambda k: signed(k, key="impostor", kid="ed"),
        "bad_signature",
    ),
    "one flipped byte in the signature": (lambda k: flip(signed(k), 2), "bad_signature"),
    "one flipped byte in the claims": (lambda k: flip(signed(k), 1), "bad_signature"),
    "empty signature": (lambda k: signed(k).rsplit(".", 1)[0] + ".", "bad_signature"),
    "jku, x5u and jwk headers naming the signer's key": (with_jwk_of_impostor, "bad_signature"),
    "no exp": (lambda k: signed(k, claims(exp=DROP)), "missing_claim"),
    "exp not a number": (lambda k: signed(k, claims(exp="tomorrow")), "malformed"),
    "expired": (lambda k: signed(k, claims(exp=int(time.time()) - 3600)), "expired"),
    "nbf in the future": (
        lambda k: signed(k, claims(nbf=int(time.time()) + 3600)),
        "not_yet_valid",
    ),
    "iat in the future": (
        lambda k: signed(k, claims(iat=int(time.time()) + 3600)),
        "not_yet_valid",
    ),
    "wrong iss": (lambda k: signed(k, claims(iss="someone-else")), "wrong_issuer"),
    "iss not a string": (lambda k: ed_signed(k, claims(iss=["deployd"])), "wrong_issuer"),
    "no iss": (lambda k: signed(k, claims(iss=DROP)), "missing_claim"),
    "no sub": (lambda k: signed(k, claims(sub=DROP)), "missing_claim"),
    "empty sub": (lambda k: signed(k, claims(sub="")), "missing_claim"),
    "no jti": (lambda k: signed(k, claims(jti=DROP)), "missing_claim"),
    "no channel": (lambda k: signed(k, claims(channel=DROP)), "missing_claim"),
    "sub not a string": (lambda k: signed(k, claims(sub=7)), "malformed"),
    "jti not a string": (lambda k: signed(k, claims(jti=5)), "malformed"),
    "iat not a number": (lambda k: signed(k, claims(iat="now")), "malformed"),
    "channel not a string": (lambda k: signed(k, claims(channel=["stable"])), "malformed"),
    "channels not a list": (lambda k: signed(k, claims(channels="stable")), "malformed"),
    "channels without the channel": (
        lambda k: signed(k, claims(channels=["beta"])),
        "malformed",
    ),
    "claims not an object": (lambda k: ed_signed(k, b"[1]"), "malformed"),
    "claims not JSON": (lambda k: ed_signed(k, b"{nope"), "malformed"),
}


@pytest.mark.parametrize(("make", "code"), BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_bad_licenses_are_refused_with_their_code(keys, verifier, make, code):
    unverified_token = make(keys)
    with pytest.raises(LicenseError) as raised:
        verifier.verify(unverified_token)
    assert raised.value.code == code, raised.value.message
    if isinstance(unverified_token, str) and unverified_token:
        assert_not_revealed(unverified_token, raised.value.message)


def assert_not_revealed(token: str, text: str) -> None:
    assert token not in text
    for part in token.split("."):
        if len(part) >= 12:
            assert part not in text


@pytest.mark.parametrize("name", ["ed", "ec", "rsa"])
def test_a_license_issued_with_each_algorithm_verifies(keys, verifier, name):
    unverified_token = issue_license(
        keys.directory / f"{name}.key",
        customer="acme",
        channel="stable",
        expires_in=timedelta(days=30),
        claims={"seats": 10, "features": ["sso"]},
    )
    license = verifier.verify(unverified_token)
    assert isinstance(license, VerifiedLicense)
    assert (license.customer, license.channel, license.channels) == ("acme", "stable", ("stable",))
    assert (license.kid, license.issuer) == (name, "deployd")
    assert re.fullmatch(r"[0-9a-f]{32}", license.jti)
    assert license.expires_at - license.issued_at == 30 * 86400
    assert license.not_before is None
    assert license.token_hash == token_hash(unverified_token)
    assert license.claims["seats"] == 10 and license.claims["features"] == ["sso"]
    assert jwt.get_unverified_header(unverified_token)["alg"] == ALG_OF[name]


def test_channels_default_to_the_license_channel(keys, verifier):
    license = verifier.verify(signed(keys, claims(channel="beta")))
    assert license.channels == ("beta",)
    assert license.may_read("beta") and not license.may_read("stable")


def test_a_license_may_read_every_channel_it_lists(keys, verifier):
    license = verifier.verify(signed(keys, claims(channels=["stable", "beta"])))
    assert license.channel == "stable"
    assert [license.may_read(c) for c in ("stable", "beta", "nightly")] == [True, True, False]


@pytest.mark.parametrize(
    ("leeway", "shift", "code"),
    [
        (30, {"exp": -10}, None),
        (0, {"exp": -10}, "expired"),
        (30, {"exp": -120}, "expired"),
        (30, {"nbf": 10}, None),
        (0, {"nbf": 10}, "not_yet_valid"),
        (30, {"nbf": 120}, "not_yet_valid"),
    ],
)
def test_leeway_forgives_small_clock_differences(keys, leeway, shift, code):
    verifier = LicenseVerifier(keys.ring(), leeway=leeway)
    now = int(time.time())
    unverified_token = signed(keys, claims(**{name: now + s for name, s in shift.items()}))
    if code is None:
        assert verifier.verify(unverified_token).jti
    else:
        with pytest.raises(LicenseError) as raised:
            verifier.verify(unverified_token)
        assert raised.value.code == code


@pytest.mark.parametrize(
    ("audience", "aud", "code"),
    [
        ("prod", "prod", None),
        ("prod", ["staging", "prod"], None),
        ("prod", "staging", "wrong_audience"),
        ("prod", DROP, "missing_claim"),
        (None, "staging", None),  # audiences are only checked when one is configured
    ],
)
def test_audience_is_checked_when_configured(keys, audience, aud, code):
    verifier = LicenseVerifier(keys.ring(), audience=audience)
    unverified_token = signed(keys, claims(aud=aud))
    if code is None:
        assert verifier.verify(unverified_token).customer == "acme"
    else:
        with pytest.raises(LicenseError) as raised:
            verifier.verify(unverified_token)
        assert raised.value.code == code


def test_an_issuer_other_than_the_default_is_honoured(keys):
    verifier = LicenseVerifier(keys.ring(), issuer="vendor.example")
    assert verifier.verify(signed(keys, claims(iss="vendor.example"))).issuer == "vendor.example"
    with pytest.raises(LicenseError) as raised:
        verifier.verify(signed(keys))
    assert raised.value.code == "wrong_issuer"


def test_a_revoked_license_is_refused_after_every_other_check(keys):
    asked = []

    def is_revoked(jti: str) -> bool:
        asked.append(jti)
        return jti == "revoked-one"

    verifier = LicenseVerifier(keys.ring(), is_revoked=is_revoked)
    with pytest.raises(LicenseError) as raised:
        verifier.verify(signed(keys, claims(jti="revoked-one")))
    assert (raised.value.code, raised.value.status) == ("revoked", 403)
    assert verifier.verify(signed(keys, claims(jti="fine"))).jti == "fine"
    with pytest.raises(LicenseError) as raised:
        verifier.verify(signed(keys, claims(jti="revoked-one", exp=int(time.time()) - 3600)))
    assert raised.value.code == "expired"
    assert asked == ["revoked-one", "fine"]


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda k: signed(k, claims(exp=int(time.time()) - 3600, sub=DROP)), "expired"),
        (lambda k: signed(k, claims(iss="other", jti=DROP)), "wrong_issuer"),
        (lambda k: signed(k, claims(exp=DROP), key="impostor", kid="ed"), "bad_signature"),
        (lambda k: signed(k, key="rsa", kid="old"), "key_retired"),
        (lambda k: hand_built({"alg": "none", "kid": "../x"}, {}), "algorithm_not_allowed"),
    ],
    ids=[
        "expired before sub",
        "issuer before jti",
        "signature before exp",
        "kid before alg",
        "alg first",
    ],
)
def test_the_first_failing_check_decides_the_code(keys, verifier, make, code):
    with pytest.raises(LicenseError) as raised:
        verifier.verify(make(keys))
    assert raised.value.code == code


def test_verified_licenses_carry_optional_times(keys, verifier):
    now = int(time.time())
    license = verifier.verify(signed(keys, claims(iat=DROP, nbf=now - 60)))
    assert (license.issued_at, license.not_before) == (None, now - 60)


# Property: whatever arrives, verification answers with a LicenseError or a license, nothing else.
_RING_KEY = Ed25519PrivateKey.generate()
_VERIFIERS = [
    LicenseVerifier(KeyRing([RingKey("ed", "EdDSA", _RING_KEY.public_key())])),
    LicenseVerifier(
        KeyRing([RingKey("ed", "EdDSA", _RING_KEY.public_key())]), audience="prod", leeway=0
    ),
]
_VALID = jwt.encode(
    claims(exp=int(time.time()) + 86400, channels=["stable"], aud="prod"),
    _RING_KEY,
    algorithm="EdDSA",
    headers={"kid": "ed"},
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_CLAIM_NAMES = ["iss", "sub", "jti", "iat", "exp", "nbf", "aud", "channel", "channels"]
_HEADER_NAMES = ["alg", "kid", "typ", "crit", "b64", "jku", "jwk"]


def _outcome(verifier: LicenseVerifier, unverified_token) -> None:
    try:
        assert isinstance(verifier.verify(unverified_token), VerifiedLicense)
    except LicenseError:
        pass


@settings(deadline=None)
@given(
    st.sampled_from(_VERIFIERS),
    st.lists(
        st.tuples(st.integers(0, len(_VALID) - 1), st.characters(max_codepoint=0x2FF)), max_size=4
    ),
    st.integers(0, len(_VALID)),
)
def test_mutated_licenses_only_raise_license_errors(verifier, edits, keep):
    chars = list(_VALID)
    for position, char in edits:
        chars[position] = char
    _outcome(verifier, "".join(chars)[:keep])


@settings(deadline=None)
@given(
    st.sampled_from(_VERIFIERS), st.text() | st.from_regex(r"[A-Za-z0-9_.-]{0,120}", fullmatch=True)
)
def test_random_strings_only_raise_license_errors(verifier, text):
    _outcome(verifier, text)


@settings(deadline=None)
@given(
    st.sampled_from(_VERIFIERS),
    st.fixed_dictionaries({"alg": st.just("EdDSA"), "kid": st.just("ed")})
    | st.dictionaries(st.sampled_from(_HEADER_NAMES), _JSON),
    st.dictionaries(st.sampled_from(_CLAIM_NAMES) | st.text(max_size=5), _JSON),
)
def test_signed_arbitrary_headers_and_claims_only_raise_license_errors(verifier, header, payload):
    _outcome(verifier, hand_built(header, payload, _RING_KEY.sign))


# Issuing.


def test_issued_claims_are_exactly_what_was_asked(keys):
    now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    unverified_token = issue_license(
        keys.directory / "ed.key",
        customer="acme",
        channel="stable",
        channels=["stable", "beta", "stable"],
        expires_in=timedelta(hours=12),
        claims={"seats": 10},
        issuer="vendor.example",
        audience="prod",
        now=now,
    )
    header = jwt.get_unverified_header(unverified_token)
    unverified_claims = jwt.decode(unverified_token, options={"verify_signature": False})
    jti = unverified_claims.pop("jti")
    assert re.fullmatch(r"[0-9a-f]{32}", jti)
    assert (header["alg"], header["kid"]) == ("EdDSA", "ed")
    assert unverified_claims == {
        "iss": "vendor.example",
        "sub": "acme",
        "iat": int(now.timestamp()),
        "exp": int(now.timestamp()) + 12 * 3600,
        "channel": "stable",
        "channels": ["stable", "beta"],
        "aud": "prod",
        "seats": 10,
    }


def test_every_license_gets_its_own_id(keys, verifier):
    def jti() -> str:
        unverified_token = issue_license(
            keys.directory / "ed.key", customer="a", channel="s", expires_in=timedelta(days=1)
        )
        return verifier.verify(unverified_token).jti

    assert jti() != jti()


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        ({"customer": ""}, "customer"),
        ({"channel": ""}, "channel is required"),
        ({"channels": ["beta"]}, "must be one of the license's channels"),
        ({"expires_in": timedelta(0)}, "expire in the future"),
        ({"claims": {"exp": 1, "sub": "x"}}, "claims exp, sub are reserved"),
        ({"claims": {"channels": ["all"]}}, "reserved"),
        ({"claims": {"blob": "x" * MAX_TOKEN_BYTES}}, "servers refuse licenses over 8192"),
        ({"now": datetime(2030, 1, 1)}, "timezone-aware"),
    ],
)
def test_issuing_refuses_bad_arguments(keys, arguments, complaint):
    asked = {
        "customer": "acme",
        "channel": "stable",
        "expires_in": timedelta(days=1),
        **arguments,
    }
    with pytest.raises(BadRequestError, match=complaint):
        issue_license(keys.directory / "ed.key", **asked)


def test_issuing_warns_about_a_key_others_can_read(keys, tmp_path):
    write_key_pair(generate_private_key(), tmp_path, "shared")
    os.chmod(tmp_path / "shared.key", 0o644)
    warnings: list[str] = []
    issue_license(
        tmp_path / "shared.key",
        customer="acme",
        channel="stable",
        expires_in=timedelta(days=1),
        warn=warnings,
    )
    assert len(warnings) == 1 and "shared.key" in warnings[0] and "readable" in warnings[0]


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_issuing_refuses_a_key_others_can_write(tmp_path, mode):
    write_key_pair(generate_private_key(), tmp_path, "open")
    os.chmod(tmp_path / "open.key", mode)
    with pytest.raises(KeyFileError, match="open.key: private key is writable"):
        issue_license(
            tmp_path / "open.key", customer="acme", channel="stable", expires_in=timedelta(days=1)
        )


def test_issuing_refuses_a_key_of_an_unsupported_type(tmp_path):
    from cryptography.hazmat.primitives.asymmetric import ec

    write_key_pair(ec.generate_private_key(ec.SECP384R1()), tmp_path, "p384")
    with pytest.raises(KeyFileError, match="p384.key: EC key on curve secp384r1"):
        issue_license(
            tmp_path / "p384.key", customer="acme", channel="stable", expires_in=timedelta(days=1)
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("90m", timedelta(minutes=90)),
        ("3600s", timedelta(seconds=3600)),
        ("2w", timedelta(weeks=2)),
        (" 7d ", timedelta(days=7)),
    ],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "30", "d", "0d", "-1d", "1.5d", "30 days", "1y", "9" * 20 + "w"]
)
def test_bad_durations_are_refused(text):
    with pytest.raises(BadRequestError):
        parse_duration(text)


def test_token_hash_and_mask_identify_a_token_without_revealing_it(keys):
    unverified_token = signed(keys)
    digest = hashlib.sha256(unverified_token.encode()).hexdigest()
    assert token_hash(unverified_token) == digest
    assert mask(unverified_token) == f"lic…{digest[:8]}"
    assert_not_revealed(unverified_token, mask(unverified_token))
    assert mask("\ud800").startswith("lic…")
