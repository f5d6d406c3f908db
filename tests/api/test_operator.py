"""The operator endpoints, through Flask's test client: what the W&B operator sees."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import jwt
import pytest

from deployd.licensing.keyring import generate_private_key
from deployd.specs.signing import SpecSigner, verify_signature
from tests.support import jwt_forge
from tests.support.http import CHANNEL_URL, basic, error_of


def wait_until(predicate, timeout: float = 30.0) -> None:
    """Wait for the worker's background refresh to show a change (a generous deadline)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not seen within {timeout} s"
        time.sleep(0.01)


def test_spec_for_the_licenses_channel(client, license):
    response = client.get(CHANNEL_URL, headers=basic(license))
    assert response.status_code == 200
    assert response.content_type == "application/json"
    spec = json.loads(response.data)
    assert set(spec) == {"metadata", "chart", "values"}
    assert all(isinstance(v, str) for v in spec["metadata"].values())
    assert spec["metadata"]["channel"] == "stable"
    assert spec["metadata"]["release"] == "1.2.0"
    assert spec["metadata"]["sequence"] == "1"
    assert spec["chart"] == {
        "url": "https://charts.example.com",
        "name": "server",
        "version": "0.12.0",
    }
    assert spec["values"] == {"global": {"logLevel": "info"}, "app": {"image": {"tag": "0.52.0"}}}


def test_bearer_and_legacy_post_answer_the_same_bytes(client, license):
    get = client.get(CHANNEL_URL, headers=basic(license))
    bearer = client.get(CHANNEL_URL, headers={"Authorization": f"Bearer {license}"})
    # Older W&B operators POST their active spec; the body is ignored.
    post = client.post(CHANNEL_URL, headers=basic(license), json={"metadata": {}, "release": {}})
    assert get.data == bearer.data == post.data
    assert get.headers["ETag"] == post.headers["ETag"]


def test_spec_is_signed_over_the_exact_body(app, client, license):
    response = client.get(CHANNEL_URL, headers=basic(license))
    signer: SpecSigner = app.extensions["deployd"].signer
    header = response.headers["Deployd-Signature"]
    assert verify_signature(header, response.data, {signer.kid: signer.public_key}) == signer.kid
    with pytest.raises(Exception, match="does not verify"):
        verify_signature(
            header, response.data.replace(b"1.2.0", b"1.2.1"), {signer.kid: signer.public_key}
        )


def test_body_is_byte_identical_between_requests_and_etag_gives_304(client, license):
    first = client.get(CHANNEL_URL, headers=basic(license))
    second = client.get(CHANNEL_URL, headers=basic(license))
    assert first.data == second.data
    etag = first.headers["ETag"]
    not_modified = client.get(CHANNEL_URL, headers={**basic(license), "If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.data == b""
    assert not_modified.headers["ETag"] == etag
    stale = client.get(CHANNEL_URL, headers={**basic(license), "If-None-Match": '"other"'})
    assert stale.status_code == 200


def test_other_allowed_channel_by_query(client, license):
    response = client.get(CHANNEL_URL + "?channel=beta", headers=basic(license))
    assert response.status_code == 200
    assert response.get_json()["metadata"]["channel"] == "beta"


def test_pinned_release(client, license):
    response = client.get(CHANNEL_URL + "/release/1.0.0", headers=basic(license))
    assert response.status_code == 200
    spec = response.get_json()
    assert spec["metadata"]["release"] == "1.0.0"
    assert spec["chart"]["version"] == "0.10.0"
    assert spec["metadata"]["releasedAt"] == "2026-09-01T12:00:00Z"


def test_required_release_is_stepped_through(client, license):
    headers = basic(license)
    old = client.get(CHANNEL_URL, headers={**headers, "Deployd-Current-Version": "1.0.0"})
    assert old.get_json()["metadata"]["release"] == "1.1.0"
    at_floor = client.get(CHANNEL_URL, headers={**headers, "Deployd-Current-Version": "1.1.0"})
    assert at_floor.get_json()["metadata"]["release"] == "1.2.0"


def test_publish_is_seen(client, license, store):
    from deployd.channels import parse_channel_text
    from deployd.publishing import publish_channel
    from tests.support.factories import CHANNEL_YAML

    text = CHANNEL_YAML.format(name="stable") + "  - version: 1.3.0\n    chart: {version: 0.13.0}\n"
    publish_channel(
        store, parse_channel_text(text, filename="stable.yaml"), source=text, publisher="test"
    )
    # The worker's background refresh picks it up.
    wait_until(
        lambda: (
            client.get(CHANNEL_URL, headers=basic(license)).get_json()["metadata"]["sequence"]
            == "2"
        )
    )
    spec = client.get(CHANNEL_URL, headers=basic(license)).get_json()
    assert spec["metadata"]["release"] == "1.3.0"


def test_anonymous_channel_when_configured(tmp_path, settings, store):
    from dataclasses import replace

    from deployd.server.app import create_app

    app = create_app(replace(settings, anonymous_channel="stable"), store=store)
    client = app.test_client()
    assert client.get(CHANNEL_URL).get_json()["metadata"]["channel"] == "stable"
    assert error_of(client.get(CHANNEL_URL + "?channel=beta")) == (401, "missing")


def _retired_or_foreign_token(tmp_path) -> str:
    other = generate_private_key("EdDSA")
    return jwt.encode(jwt_forge.claims(), other, algorithm="EdDSA", headers={"kid": "test"})


BAD_REQUESTS = {
    "no credentials": (lambda kit, tmp: {}, 401, "missing"),
    "basic auth with another user": (
        lambda kit, tmp: basic(kit.issue(), user="admin"),
        401,
        "malformed",
    ),
    "not a JWT": (lambda kit, tmp: basic("not-a-jwt"), 401, "malformed"),
    "alg none": (lambda kit, tmp: basic(jwt_forge.unsigned()), 401, "algorithm_not_allowed"),
    "HS256 keyed with the public key PEM": (
        lambda kit, tmp: basic(jwt_forge.hmac_with((kit.keys_dir / "test.pub").read_bytes())),
        401,
        "algorithm_not_allowed",
    ),
    "unknown kid": (
        lambda kit, tmp: basic(
            jwt.encode(
                jwt_forge.claims(),
                generate_private_key(),
                algorithm="EdDSA",
                headers={"kid": "nobody"},
            )
        ),
        401,
        "unknown_key",
    ),
    "bad signature": (lambda kit, tmp: basic(_retired_or_foreign_token(tmp)), 401, "bad_signature"),
    "expired": (
        lambda kit, tmp: basic(kit.issue(expires_in=timedelta(seconds=-120))),
        403,
        "expired",
    ),
    "unknown scheme": (lambda kit, tmp: {"Authorization": "Digest abc"}, 401, "malformed"),
    "100 KB Authorization header": (lambda kit, tmp: basic("x" * 100_000), 431, "header_too_large"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_requests_get_a_clear_json_error(case, client, kit, tmp_path):
    make_headers, status, code = BAD_REQUESTS[case]
    response = client.get(CHANNEL_URL, headers=make_headers(kit, tmp_path))
    assert error_of(response) == (status, code)
    if status == 401:
        assert "WWW-Authenticate" in response.headers


@pytest.mark.parametrize(
    ("claims", "status", "code"),
    [
        ({"nbf": int(time.time()) + 3600}, 403, "not_yet_valid"),
        ({"iss": "someone-else"}, 403, "wrong_issuer"),
        ({"exp": None}, 403, "missing_claim"),
    ],
    ids=["nbf in the future", "wrong iss", "no exp"],
)
def test_claim_problems(claims, status, code, client, kit):
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(kit.private_key.read_bytes(), None)
    payload = {k: v for k, v in jwt_forge.claims(**claims).items() if v is not None}
    token = jwt.encode(payload, private, algorithm="EdDSA", headers={"kid": "test"})
    assert error_of(client.get(CHANNEL_URL, headers=basic(token))) == (status, code)


def test_revoked_license_is_refused(client, kit, store):
    token = kit.issue()
    assert client.get(CHANNEL_URL, headers=basic(token)).status_code == 200
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    store.revoke(jti, reason="test")
    wait_until(lambda: client.get(CHANNEL_URL, headers=basic(token)).status_code != 200)
    assert error_of(client.get(CHANNEL_URL, headers=basic(token))) == (403, "revoked")


def test_channel_the_license_may_not_read(client, kit):
    token = kit.issue(channel="stable")
    response = client.get(CHANNEL_URL + "?channel=beta", headers=basic(token))
    assert error_of(response) == (403, "channel_not_allowed")


def test_unknown_channel_and_release(client, kit, license):
    token = kit.issue(channel="nope")
    assert error_of(client.get(CHANNEL_URL, headers=basic(token))) == (404, "unknown_channel")
    response = client.get(CHANNEL_URL + "/release/9.9.9", headers=basic(license))
    assert error_of(response) == (404, "unknown_release")


def test_wrong_method_and_unknown_path_are_json(client, license):
    assert error_of(client.delete(CHANNEL_URL, headers=basic(license))) == (
        405,
        "method_not_allowed",
    )
    assert error_of(client.get("/api/v1/nothing")) == (404, "not_found")


def test_oversize_body_is_413(client, license):
    response = client.post(CHANNEL_URL, headers=basic(license), data=b"x" * 2_000_000)
    assert error_of(response) == (413, "payload_too_large")
