"""429 with Retry-After once a license or an address asks too often."""

from __future__ import annotations

from dataclasses import replace

import pytest

from deployd.server.app import create_app
from tests.support.http import CHANNEL_URL, basic, error_of


@pytest.fixture
def limited(settings, store):
    return create_app(
        replace(settings, rate_limit_per_minute=3, rate_limit_per_address_per_minute=5),
        store=store,
    ).test_client()


def test_a_license_over_its_limit_gets_429(limited, kit):
    token = kit.issue()
    for _ in range(3):
        assert limited.get(CHANNEL_URL, headers=basic(token)).status_code == 200
    response = limited.get(CHANNEL_URL, headers=basic(token))
    assert error_of(response) == (429, "rate_limited")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # Another license from the same address still gets through (until the address limit).
    assert limited.get(CHANNEL_URL, headers=basic(kit.issue())).status_code == 200


def test_an_address_over_its_limit_gets_429_even_without_a_valid_license(limited):
    for _ in range(5):
        assert limited.get(CHANNEL_URL, headers=basic("garbage")).status_code == 401
    assert error_of(limited.get(CHANNEL_URL, headers=basic("garbage"))) == (429, "rate_limited")
    validate = limited.post("/api/v1/licenses/validate", json={"license": "x"})
    assert error_of(validate) == (429, "rate_limited")


def test_limits_can_be_switched_off(settings, store, kit):
    client = create_app(
        replace(settings, rate_limit_enabled=False, rate_limit_per_minute=1), store=store
    ).test_client()
    token = kit.issue()
    assert all(client.get(CHANNEL_URL, headers=basic(token)).status_code == 200 for _ in range(5))
