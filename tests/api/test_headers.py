"""Security headers on every response of every route: nosniff, and a Cache-Control that fits.

Specs are per license and must be revalidated (`private, no-cache`: shared caches never keep
them, the client's ETag makes revalidation cheap); the JWKS is public and may be cached a while;
everything else, errors above all, is `no-store`.
"""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from deployd.server.app import create_app
from tests.support.http import basic

SPEC_ENDPOINTS = {"operator.channel_spec", "operator.pinned_spec"}
JWKS_ENDPOINT = "meta.jwks"
# Values for path arguments: ones that exist (so success responses are covered too) and not.
ARGUMENTS = {"release_id": ["1.2.0", "9.9.9"], "name": ["stable", "nope"], "jti": ["a" * 32]}


def expected_cache_control(endpoint: str | None, method: str, status: int) -> str:
    if method == "OPTIONS":
        return "no-store"
    if endpoint in SPEC_ENDPOINTS and status in (200, 304):
        return "private, no-cache"
    if endpoint == JWKS_ENDPOINT and status == 200:
        return "public, max-age="
    return "no-store"


def requests_for(app, license: str):
    """(endpoint, method, path, headers) for every rule and method, anonymous and with a license."""
    credentials = [{}, basic(license), {"Authorization": f"Bearer {license}"}, basic("x")]
    for rule in app.url_map.iter_rules():
        paths = [rule.rule]
        for argument in rule.arguments:
            paths = [
                re.sub(rf"<(?:[a-z]+:)?{argument}>", value, path)
                for path in paths
                for value in ARGUMENTS.get(argument, ["x"])
            ]
        for method in sorted(rule.methods):
            for path in paths:
                for headers in credentials:
                    yield rule.endpoint, method, path, headers


def test_every_route_sends_nosniff_and_the_right_cache_control(app, client, license):
    seen: dict[str, set[int]] = {}
    # Twice: the second round is answered from every per-worker cache (verified licenses,
    # rendered specs), which must not lose a header.
    for endpoint, method, path, headers in [*requests_for(app, license)] * 2:
        body = {"license": license} if method in ("POST", "PUT") else None
        response = client.open(path, method=method, headers=headers, json=body)
        where = f"{method} {path} -> {response.status_code}"
        assert response.headers["X-Content-Type-Options"] == "nosniff", where
        assert response.headers["X-Request-Id"], where
        expected = expected_cache_control(endpoint, method, response.status_code)
        assert response.headers["Cache-Control"].startswith(expected), where
        seen.setdefault(endpoint, set()).add(response.status_code)
    # The table above did reach the answers that are cached differently.
    assert 200 in seen["operator.channel_spec"] and 200 in seen["operator.pinned_spec"]
    assert 200 in seen[JWKS_ENDPOINT]


def test_a_304_keeps_the_spec_cache_control(client, license):
    first = client.get("/api/v1/operator/channel", headers=basic(license))
    again = client.get(
        "/api/v1/operator/channel",
        headers={**basic(license), "If-None-Match": first.headers["ETag"]},
    )
    assert again.status_code == 304
    assert again.headers["Cache-Control"] == "private, no-cache"
    assert again.headers["X-Content-Type-Options"] == "nosniff"


def test_jwks_may_be_cached_publicly_for_a_bounded_time(client):
    cache_control = client.get("/.well-known/jwks.json").headers["Cache-Control"]
    max_age = re.fullmatch(r"public, max-age=(\d+)", cache_control)
    assert max_age is not None, cache_control
    # Short enough that a key published for rotation reaches clients well within a day.
    assert 0 < int(max_age.group(1)) <= 3600


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nothing/here"),
        ("DELETE", "/api/v1/operator/channel"),
        ("GET", "/api/v1/operator/channel"),
        ("POST", "/api/v1/licenses/validate"),
    ],
    ids=["404", "405", "401", "400"],
)
def test_errors_are_never_stored(client, method, path):
    response = client.open(path, method=method)
    assert response.status_code >= 400
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    ("trusted_proxies", "forwarded_for"),
    [(0, "203.0.113.{n}"), (1, "203.0.113.{n}, 198.51.100.7")],
    ids=["no proxy: the header is ignored", "one proxy: only its entry counts"],
)
def test_a_spoofed_x_forwarded_for_does_not_dodge_the_address_limit(
    settings, store, trusted_proxies, forwarded_for
):
    limited = create_app(
        replace(settings, trusted_proxies=trusted_proxies, rate_limit_per_address_per_minute=3),
        store=store,
    ).test_client()
    statuses = [
        limited.get(
            "/api/v1/operator/channel",
            headers={"X-Forwarded-For": forwarded_for.format(n=n), **basic("x")},
        ).status_code
        for n in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]
