"""POST /api/v1/licenses/validate: the verdict for support and billing tools, always 200."""

from __future__ import annotations

from datetime import timedelta

import pytest

URL = "/api/v1/licenses/validate"


def test_valid_license_shows_its_claims(client, kit):
    token = kit.issue(customer="acme", seats=10)
    body = client.post(URL, json={"license": token}).get_json()
    assert body["valid"] is True
    assert body["code"] == "valid"
    assert body["claims"]["sub"] == "acme"
    assert body["claims"]["seats"] == 10


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"license": ""}, "missing"),
        ({}, "missing"),
        ({"license": "abc"}, "malformed"),
    ],
)
def test_invalid_license_is_200_with_the_code(client, payload, code):
    response = client.post(URL, json=payload)
    assert response.status_code == 200
    body = response.get_json()
    assert (body["valid"], body["code"], body["claims"]) == (False, code, None)
    assert body["message"]


def test_expired_license(client, kit):
    body = client.post(
        URL, json={"license": kit.issue(expires_in=timedelta(seconds=-60))}
    ).get_json()
    assert (body["valid"], body["code"]) == (False, "expired")


def test_an_expired_license_still_shows_whose_it_is_and_when_it_expired(client, kit):
    token = kit.issue(customer="acme", expires_in=timedelta(days=-3), seats=10)
    body = client.post(URL, json={"license": token}).get_json()
    assert (body["valid"], body["code"]) == (False, "expired")
    assert body["claims"]["sub"] == "acme" and body["claims"]["seats"] == 10
    assert isinstance(body["claims"]["exp"], int)


def test_a_revoked_license_shows_its_claims(client, kit, store):
    token = kit.issue(customer="acme")
    jti = client.post(URL, json={"license": token}).get_json()["claims"]["jti"]
    store.revoke(jti)
    client.application.extensions["deployd"].state.refresh(force=True)
    body = client.post(URL, json={"license": token}).get_json()
    assert (body["code"], body["claims"]["sub"]) == ("revoked", "acme")


def test_a_license_whose_signature_fails_shows_no_claims(client, kit):
    header, payload, signature = kit.issue().split(".")
    forged = ".".join(
        [header, payload, signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")]
    )
    body = client.post(URL, json={"license": forged}).get_json()
    assert (body["code"], body["claims"]) == ("bad_signature", None)


@pytest.mark.parametrize(
    "data", [b"not json", b"[1, 2]", b'{"license": 5}'], ids=["not json", "array", "number"]
)
def test_malformed_request_is_400(client, data):
    response = client.post(URL, data=data, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_request"


def test_message_never_echoes_the_token(client, kit):
    token = kit.issue(expires_in=timedelta(seconds=-60))
    assert token not in client.post(URL, json={"license": token}).get_data(as_text=True)
