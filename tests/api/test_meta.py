"""Health, readiness, public keys and the served OpenAPI document."""

from __future__ import annotations

import yaml


def test_healthz_and_readyz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz").get_json()
    assert (ready["status"], ready["store"], ready["channels"]) == ("ready", "reachable", 2)
    assert 0 <= ready["viewAgeSeconds"] < 10
    assert 0 <= ready["revocationsAgeSeconds"] < 10


def test_jwks_lists_spec_and_license_keys(client, app):
    keys = client.get("/.well-known/jwks.json").get_json()["keys"]
    roles = {(k["kid"], k["deployd_role"]) for k in keys}
    assert (app.extensions["deployd"].signer.kid, "spec") in roles
    assert ("test", "license") in roles
    assert all("d" not in k for k in keys), "a private component leaked into the JWKS"


def test_openapi_is_served(client):
    response = client.get("/openapi.yaml")
    assert response.status_code == 200
    assert yaml.safe_load(response.data)["openapi"].startswith("3.")


def test_every_response_has_security_headers(client):
    for path in ("/healthz", "/api/v1/operator/channel", "/nope"):
        response = client.get(path)
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Request-Id"]
