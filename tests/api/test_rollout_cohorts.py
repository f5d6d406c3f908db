"""Rollout cohorts are per customer: renewing a license (a new jti, the same sub) moves no one."""

from __future__ import annotations

import json
from dataclasses import replace

import jwt
import pytest

from deployd.server.app import create_app
from tests.support.http import basic
from tests.support.publisher_auth import add_publisher, bearer

CUSTOMERS = [f"customer-{i}" for i in range(4)]


@pytest.fixture
def client(settings, store):
    # Hundreds of polls by the same licenses: no rate limit in the way.
    return create_app(replace(settings, rate_limit_enabled=False), store=store).test_client()


def publish_rollout(client, token: str, percent: int) -> None:
    document = {
        "name": "stable",
        "chart": {"path": "./chart"},
        "releases": [{"version": "1.4.1"}, {"version": "1.5.0", "rollout": percent}],
    }
    response = client.put("/api/v1/channels/stable", json=document, headers=bearer(token))
    assert response.status_code == 200, response.get_json()


def jti_of(license: str) -> str:
    return jwt.decode(license, options={"verify_signature": False})["jti"]


def served_release(client, license: str) -> str:
    response = client.get("/api/v1/operator/channel", headers=basic(license))
    assert response.status_code == 200, response.get_json()
    return json.loads(response.data)["metadata"]["release"]


def test_a_renewed_license_gets_the_same_release_at_every_rollout_percentage(client, store, kit):
    token = add_publisher(store)
    licenses = {c: (kit.issue(customer=c), kit.issue(customer=c)) for c in CUSTOMERS}
    for old, renewed in licenses.values():
        assert jti_of(old) != jti_of(renewed)
    admitted_before: set[str] = set()
    for percent in range(101):
        publish_rollout(client, token, percent)
        for customer, (old, renewed) in licenses.items():
            # The first poll of each is checked by the Flask view, the repeats by the fast path.
            releases = {served_release(client, lic) for lic in (old, renewed, renewed, old)}
            assert len(releases) == 1, (percent, customer, releases)
            if releases == {"1.5.0"}:
                admitted_before.add(customer)
            else:
                # Raising a rollout only ever adds customers.
                assert customer not in admitted_before, (percent, customer)
    assert admitted_before == set(CUSTOMERS)
