"""Pure verification: bytes and a header in, a VerifiedSpec or a refusal with a reason out."""

from __future__ import annotations

import time

import pytest

from deployd.client.errors import SpecRefusedError
from deployd.client.verify import Floor, raise_floor, verify_spec
from deployd.specs.signing import b64url
from tests.client.specs import DAY, encode, spec_document

NOW = time.time()


def check(signer, document_or_body, *, header=None, trusted=None, **expect):
    body = document_or_body if isinstance(document_or_body, bytes) else encode(document_or_body)
    return verify_spec(
        body,
        signer.sign(body) if header is None else header,
        trusted_keys=signer.trusted if trusted is None else trusted,
        now=expect.pop("now", NOW),
        expected_channel=expect.pop("expected_channel", "stable"),
        **expect,
    )


def refused(reason, *args, **kwargs):
    with pytest.raises(SpecRefusedError) as caught:
        check(*args, **kwargs)
    assert caught.value.reason == reason, caught.value.message
    return caught.value


def test_a_good_spec_is_returned_with_its_facts(signer):
    document = spec_document(channel="stable", release="1.2.0", sequence=7)
    spec = check(signer, document, expected_channel="stable", floors={"stable": Floor(7)})
    assert (spec.channel, spec.release, spec.sequence, spec.key_id) == (
        "stable",
        "1.2.0",
        7,
        signer.kid,
    )
    assert spec.chart == document["chart"] and spec.values == document["values"]
    assert spec.body == encode(document)
    assert not spec.is_expired(NOW)


def test_either_key_of_a_rotating_set_is_accepted(signer, other_signer):
    trusted = {**signer.trusted, **other_signer.trusted}
    for key in (signer, other_signer):
        assert check(key, spec_document(), trusted=trusted).key_id == key.kid


def test_a_body_changed_by_one_byte_is_refused(signer):
    body = encode(spec_document())
    header = signer.sign(body)
    tampered = body.replace(b'"1.0.0"', b'"1.0.1"', 1)
    assert tampered != body and len(tampered) == len(body)
    refused("bad_signature", signer, tampered, header=header)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("", "missing_signature"),
        ("garbage", "malformed_signature"),
        ('keyid="test-spec", alg="rsa", sig="AAAA"', "malformed_signature"),
        ('keyid="test-spec", alg="ed25519"', "malformed_signature"),
        ('keyid="test-spec", alg="ed25519", sig="' + b64url(b"\0" * 64) + '"', "bad_signature"),
        ('keyid="nobody", alg="ed25519", sig="' + b64url(b"\0" * 64) + '"', "unknown_key"),
    ],
)
def test_bad_signature_headers_are_refused(signer, header, reason):
    refused(reason, signer, spec_document(), header=header)


def test_a_spec_signed_by_an_untrusted_key_is_refused(signer, other_signer):
    error = refused("unknown_key", other_signer, spec_document(), trusted=signer.trusted)
    assert "other-spec" in error.message


def test_an_untrusted_key_reusing_a_trusted_key_id_fails_the_signature(signer):
    from tests.client.specs import SpecKey

    impostor = SpecKey.generate(signer.kid)
    refused("bad_signature", impostor, spec_document(), trusted=signer.trusted)


def _without(section, key):
    document = spec_document()
    del document[section][key]
    return document


def _with(section, key, value):
    document = spec_document()
    if section is None:
        document[key] = value
    else:
        document[section][key] = value
    return document


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (b"not json", "malformed"),
        (b"\xff\xfe", "malformed"),
        (b"[1, 2]", "malformed"),
        (b'{"metadata": {}, "metadata": {}}', "malformed"),
        (b"[" * 100_000 + b"]" * 100_000, "malformed"),
        ({"chart": {"name": "x"}, "values": {}}, "missing_field"),
        (_with(None, "metadata", ["channel"]), "missing_field"),
        (_with("metadata", "sequence", 3), "metadata_not_strings"),
        (_with("metadata", "extra", {"nested": "x"}), "metadata_not_strings"),
        (_with("metadata", "extra", None), "metadata_not_strings"),
        (_without("metadata", "release"), "missing_field"),
        (_without("metadata", "expires"), "missing_field"),
        (_with("metadata", "channel", ""), "missing_field"),
        (_with(None, "chart", None), "missing_field"),
        (_with(None, "chart", {}), "missing_field"),
        (_with(None, "chart", ["server"]), "missing_field"),
        (_with(None, "values", None), "missing_field"),
        (_with(None, "values", [1]), "missing_field"),
        (_with("metadata", "sequence", "abc"), "malformed"),
        (_with("metadata", "sequence", "-1"), "malformed"),
        (_with("metadata", "sequence", "07"), "malformed"),
        (_with("metadata", "expires", "tomorrow"), "malformed"),
        (_with("metadata", "expires", "2999-01-01T00:00:00"), "malformed"),
        (_with("metadata", "issuedAt", "yesterday"), "malformed"),
    ],
)
def test_signed_but_malformed_specs_are_refused(signer, document, reason):
    refused(reason, signer, document)


def test_a_spec_for_another_channel_is_refused(signer):
    error = refused(
        "wrong_channel", signer, spec_document(channel="beta"), expected_channel="stable"
    )
    assert "beta" in error.message and "stable" in error.message


def test_the_expected_channel_must_be_given(signer):
    body = encode(spec_document(channel="beta"))
    with pytest.raises(TypeError):
        verify_spec(body, signer.sign(body), trusted_keys=signer.trusted, now=NOW)  # type: ignore[call-arg]


def test_a_spec_for_another_release_than_the_pinned_one_is_refused(signer):
    refused("wrong_release", signer, spec_document(release="1.2.0"), pinned_release="1.0.0")


def test_a_lower_sequence_than_already_accepted_is_a_rollback(signer):
    error = refused("rollback", signer, spec_document(sequence=4), floors={"stable": Floor(5)})
    assert "rollback" in error.message


@pytest.mark.parametrize("sequence", [5, 6])
def test_the_same_or_a_higher_sequence_is_accepted(signer, sequence):
    spec = check(signer, spec_document(sequence=sequence), floors={"stable": Floor(5)})
    assert spec.sequence == sequence


def test_floors_are_kept_per_channel(signer):
    spec = check(
        signer,
        spec_document(channel="beta", sequence=1),
        expected_channel="beta",
        floors={"stable": Floor(9, "2.0.0")},
    )
    assert spec.sequence == 1


def test_an_older_sequence_is_accepted_when_that_release_is_pinned_on_purpose(signer):
    document = spec_document(release="1.0.0", sequence=3)
    spec = check(signer, document, pinned_release="1.0.0", floors={"stable": Floor(9, "1.2.0")})
    assert spec.sequence == 3


def test_a_lower_release_at_the_same_sequence_is_a_downgrade(signer):
    # The spec the server gave a client still on 1.0.0 (the required 1.1.0), replayed to a
    # client that accepted 1.3.0 at the same sequence.
    document = spec_document(release="1.1.0", sequence=5)
    error = refused("downgrade", signer, document, floors={"stable": Floor(5, "1.3.0")})
    assert "'1.1.0'" in error.message and "'1.3.0'" in error.message


@pytest.mark.parametrize(
    ("release", "sequence", "floor"),
    [
        ("1.3.0", 5, Floor(5, "1.3.0")),  # the same spec again
        ("1.4.0", 5, Floor(5, "1.3.0")),  # the next required step at the same sequence
        ("1.10.0", 5, Floor(5, "1.9.0")),  # semver order, not text order
        ("1.1.0", 6, Floor(5, "1.3.0")),  # a publisher's rollback is a new, higher sequence
        ("1.1.0", 5, Floor(5)),  # floors written before releases were kept
    ],
)
def test_a_release_at_or_above_the_floor_or_at_a_higher_sequence_is_accepted(
    signer, release, sequence, floor
):
    spec = check(
        signer, spec_document(release=release, sequence=sequence), floors={"stable": floor}
    )
    assert (spec.release, spec.sequence) == (release, sequence)


def test_a_lower_release_is_accepted_when_the_user_pinned_it(signer):
    document = spec_document(release="1.1.0", sequence=5)
    floors = {"stable": Floor(5, "1.3.0")}
    assert check(signer, document, pinned_release="1.1.0", floors=floors).release == "1.1.0"


@pytest.mark.parametrize(
    ("floor", "release", "sequence", "pinned", "raised"),
    [
        (None, "1.1.0", 5, False, Floor(5, "1.1.0")),
        (Floor(5, "1.1.0"), "1.3.0", 5, False, Floor(5, "1.3.0")),
        (Floor(5, "1.3.0"), "1.1.0", 6, False, Floor(6, "1.1.0")),
        (Floor(5, "1.3.0"), "1.3.0", 5, False, Floor(5, "1.3.0")),
        (Floor(5), "1.0.0", 5, False, Floor(5, "1.0.0")),
        # The user's pin sets the release at this sequence, so unpinning continues from it.
        (Floor(5, "1.3.0"), "1.0.0", 5, True, Floor(5, "1.0.0")),
        # An old pinned spec never lowers the sequence.
        (Floor(5, "1.3.0"), "1.0.0", 3, True, Floor(5, "1.3.0")),
    ],
)
def test_the_floor_rises_with_what_is_accepted(signer, floor, release, sequence, pinned, raised):
    spec = check(
        signer,
        spec_document(release=release, sequence=sequence),
        pinned_release=release if pinned else None,
    )
    assert raise_floor(floor, spec, pinned=pinned) == raised


@pytest.mark.parametrize("offset", [0.0, 1.0, 30 * DAY])
def test_an_expired_spec_is_refused_as_a_freeze(signer, offset):
    document = spec_document(issued_at=NOW - 2 * DAY, expires=NOW - DAY)
    error = refused("expired", signer, document, now=NOW - DAY + offset)
    assert "freeze" in error.message


def test_a_spec_is_good_until_the_second_it_expires(signer):
    expires = float(int(NOW) + 60)
    document = spec_document(expires=expires)
    assert check(signer, document, now=expires - 1).is_expired(expires)
    refused("expired", signer, document, now=expires)


def test_verification_checks_the_signature_before_anything_in_the_body(signer, other_signer):
    # An untrusted key's expired, wrong-channel spec is refused for its key, not its content.
    document = spec_document(channel="beta", expires=NOW - DAY)
    refused("unknown_key", other_signer, document, trusted=signer.trusted, expected_channel="x")
