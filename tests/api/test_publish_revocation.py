"""POST /api/v1/licenses/<jti>/revoke: a publisher revokes a license; every server refuses it."""

from __future__ import annotations

import json

import fakeredis
import jwt
import pytest

from deployd.errors import StoreUnavailableError
from deployd.publishing import seed_store
from deployd.server.app import create_app
from deployd.store.redis import RedisStore
from tests.support.http import basic, error_of
from tests.support.publisher_auth import add_publisher, bearer


@pytest.fixture
def token(store) -> str:
    return add_publisher(store, "alice")


def jti_of(license: str) -> str:
    return jwt.decode(license, options={"verify_signature": False})["jti"]


def test_a_revoked_license_is_refused_at_once(client, store, token, license):
    assert client.get("/api/v1/operator/channel", headers=basic(license)).status_code == 200
    jti = jti_of(license)
    response = client.post(
        f"/api/v1/licenses/{jti}/revoke", json={"reason": "leaked"}, headers=bearer(token)
    )
    assert response.status_code == 200
    assert response.get_json() == {"jti": jti, "revoked": True, "already": False}
    assert store.is_revoked(jti)
    assert error_of(client.get("/api/v1/operator/channel", headers=basic(license))) == (
        403,
        "revoked",
    )


def test_revoking_twice_says_it_already_was(client, token):
    first = client.post("/api/v1/licenses/lic-1/revoke", json={}, headers=bearer(token))
    again = client.post("/api/v1/licenses/lic-1/revoke", headers=bearer(token))
    assert first.get_json()["already"] is False
    assert again.status_code == 200
    assert again.get_json() == {"jti": "lic-1", "revoked": True, "already": True}


def test_the_publisher_and_reason_are_kept(settings):
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    store = RedisStore(client)
    store.initialize()
    seed_store(store, settings.channels_dir)
    token = add_publisher(store, "alice")
    http = create_app(settings, store=store).test_client()
    http.post("/api/v1/licenses/lic-1/revoke", json={"reason": "churned"}, headers=bearer(token))
    entry = json.loads(client.hget("deployd:revoked", "lic-1"))
    assert (entry["by"], entry["reason"]) == ("alice", "churned")
    client.close()


def test_only_publishers_revoke(client, store, license):
    jti = jti_of(license)
    for headers in ({}, basic(license), bearer(license)):
        response = client.post(f"/api/v1/licenses/{jti}/revoke", json={}, headers=headers)
        assert error_of(response) == (401, "publisher_unauthorized")
    assert not store.is_revoked(jti)


@pytest.mark.parametrize(
    "body",
    [{"reason": 5}, {"reason": "x" * 1001}, ["leaked"], "leaked"],
    ids=["number", "too long", "list", "string"],
)
def test_bad_bodies_are_400(client, store, token, body):
    response = client.post("/api/v1/licenses/lic-1/revoke", json=body, headers=bearer(token))
    assert error_of(response) == (400, "bad_request")
    assert not store.is_revoked("lic-1")


def test_a_license_id_too_long_is_400(client, token):
    response = client.post(f"/api/v1/licenses/{'x' * 129}/revoke", headers=bearer(token))
    assert error_of(response) == (400, "bad_request")


def test_the_store_being_down_is_503(client, store, token, monkeypatch):
    def down(*args, **kwargs):
        raise StoreUnavailableError("revoke: Redis at 127.0.0.1:6379/0 failed")

    monkeypatch.setattr(store, "revoke", down)
    response = client.post("/api/v1/licenses/lic-1/revoke", headers=bearer(token))
    assert error_of(response) == (503, "store_unavailable")
    assert response.headers["Retry-After"]
