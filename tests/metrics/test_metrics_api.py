"""GET /metrics through the Flask test client: what polls, refusals, publishes and the
background round add, and who may read it. Metrics are process-wide, so every test compares a
scrape after with one before."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from deployd.errors import ConfigError
from deployd.keyfiles import write_key_pair
from deployd.licensing.keyring import generate_private_key
from deployd.protocol import METRICS_PATH, SPEC_PATH
from deployd.server.app import create_app
from deployd.server.settings import Settings
from tests.support.factories import CHANNEL_YAML
from tests.support.http import basic, error_of
from tests.support.metrics import Samples, labels_of, parse, total, value
from tests.support.polling import eventually
from tests.support.publisher_auth import bearer, yaml_body
from tests.support.world import World

SECRET = "metrics-token-0123456789"
# stable with one more release, 1.3.0.
WITH_RELEASE = (
    CHANNEL_YAML.format(name="stable")
    + """\
  - version: 1.3.0
    chart: {version: 0.13.0}
"""
)


def scrape(client, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get(METRICS_PATH, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    return parse(response.get_data(as_text=True))


def requests_of(samples: Samples, status: str, route: str = SPEC_PATH) -> float:
    return value(samples, "deployd_http_requests_total", route=route, status=status)


def test_polls_not_modified_and_refusals_are_counted(world: World) -> None:
    client, license = world.client, world.license()
    before = scrape(client)
    first = client.get(SPEC_PATH, headers=basic(license))  # Flask: the license is new
    again = client.get(SPEC_PATH, headers=basic(license))  # the fast path
    assert first.status_code == again.status_code == 200
    etag = first.headers["ETag"]
    assert (
        client.get(SPEC_PATH, headers={**basic(license), "If-None-Match": etag}).status_code == 304
    )
    assert error_of(client.get(SPEC_PATH))[1] == "missing"
    assert error_of(client.get(SPEC_PATH, headers=basic("not-a-jwt")))[1] == "malformed"
    after = scrape(client)

    def added(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert requests_of(after, "200") - requests_of(before, "200") == 2
    assert requests_of(after, "304") - requests_of(before, "304") == 1
    assert requests_of(after, "401") - requests_of(before, "401") == 2
    release = first.get_json()["metadata"]["release"]
    assert added("deployd_specs_served_total", channel="stable", release=release) == 2
    assert added("deployd_specs_not_modified_total", channel="stable") == 1
    assert added("deployd_license_refusals_total", code="missing") == 1
    assert added("deployd_license_refusals_total", code="malformed") == 1
    assert added("deployd_http_request_duration_seconds_count", route=SPEC_PATH) == 5


def test_a_path_no_route_matches_is_counted_as_unmatched(world: World) -> None:
    client = world.client
    before = scrape(client)
    assert error_of(client.get("/no/such/path-4711")) == (404, "not_found")
    after = scrape(client)
    added = requests_of(after, "404", "unmatched") - requests_of(before, "404", "unmatched")
    assert added == 1
    routes = {ls["route"] for ls in labels_of(after, "deployd_http_requests_total")}
    assert not any("4711" in route for route in routes)


def test_rate_limit_refusals_are_counted(world: World) -> None:
    client = create_app(replace(world.settings, rate_limit_per_minute=1), store=world.store)
    client = client.test_client()
    license = world.license()
    before = scrape(client)
    assert client.get(SPEC_PATH, headers=basic(license)).status_code == 200
    assert error_of(client.get(SPEC_PATH, headers=basic(license))) == (429, "rate_limited")
    after = scrape(client)
    assert (
        value(after, "deployd_rate_limited_total") - value(before, "deployd_rate_limited_total")
        == 1
    )
    assert requests_of(after, "429") - requests_of(before, "429") == 1


def test_publishes_promotions_rollbacks_and_revocations_are_counted(world: World) -> None:
    client, token = world.client, world.publisher_token()
    before = scrape(client)
    changed = CHANNEL_YAML.format(name="stable").replace("0.12.0", "0.12.1")
    assert client.put("/api/v1/channels/stable", **yaml_body(changed, token)).status_code == 200
    rollback = "/api/v1/channels/stable/rollback"
    assert client.post(rollback, json={"sequence": 1}, headers=bearer(token)).status_code == 200
    beta = WITH_RELEASE.replace("name: stable", "name: beta")
    assert client.put("/api/v1/channels/beta", **yaml_body(beta, token)).status_code == 200
    promote = {"from": "beta", "version": "1.3.0"}
    response = client.post("/api/v1/channels/stable/promote", json=promote, headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    jti = "license-to-revoke"
    assert client.post(f"/api/v1/licenses/{jti}/revoke", headers=bearer(token)).status_code == 200
    after = scrape(client)

    def added(kind: str) -> float:
        return value(after, "deployd_changes_total", type=kind) - value(
            before, "deployd_changes_total", type=kind
        )

    assert [added(k) for k in ("publish", "rollback", "promote", "revoke")] == [2, 1, 1, 1]
    route = "/api/v1/channels/<name>"
    published = "deployd_http_request_duration_seconds_count"
    assert value(after, published, route=route) - value(before, published, route=route) == 2
    assert requests_of(after, "200", route) - requests_of(before, "200", route) == 2


def test_the_background_round_counts_cache_lookups_and_sets_the_view_gauges(
    world: World,
) -> None:
    client, license = world.client, world.license()
    before = scrape(client)
    for _ in range(3):
        assert client.get(SPEC_PATH, headers=basic(license)).status_code == 200

    def added(name: str, result: str) -> float:
        return value(scrape(client), name, result=result) - value(before, name, result=result)

    # One verification, then answers from the cache; one render, then the rendered spec.
    eventually(lambda: added("deployd_license_cache_lookups_total", "hit") == 2)
    assert added("deployd_license_cache_lookups_total", "miss") == 1
    eventually(lambda: added("deployd_spec_cache_lookups_total", "hit") == 2)
    assert added("deployd_spec_cache_lookups_total", "miss") == 1
    samples = scrape(client)
    assert value(samples, "deployd_compiled_channels") == 2  # stable and beta
    # One license, one rendered spec, two compressed channel documents: each a few hundred
    # bytes to a few KB.
    assert 500 < value(samples, "deployd_cache_bytes", cache="license") < 4096
    assert 1024 < value(samples, "deployd_cache_bytes", cache="spec") < 8192
    assert 100 < value(samples, "deployd_cache_bytes", cache="channel_documents") < 8192
    assert value(samples, "deployd_store_unreachable_workers") == 0
    assert value(samples, "deployd_revocation_max_staleness_seconds") == 300
    assert 0 <= value(samples, "deployd_store_view_age_seconds") < 300


def test_a_halted_release_is_1_until_it_is_resumed(world: World) -> None:
    client, token = world.client, world.publisher_token()
    assert (
        client.put("/api/v1/channels/stable", **yaml_body(WITH_RELEASE, token)).status_code == 200
    )
    releases = "/api/v1/channels/stable/rollout/releases/1.3.0"
    assert client.post(releases + "/halt", headers=bearer(token)).status_code == 200

    def halted() -> float:
        client.get("/healthz")  # any request starts the refresher in this process
        return value(scrape(client), "deployd_release_halted", channel="stable", release="1.3.0")

    eventually(lambda: halted() == 1)
    assert client.post(releases + "/resume", headers=bearer(token)).status_code == 200
    eventually(lambda: halted() == 0)


def test_fleet_instances_are_counted_by_channel_and_release(world: World) -> None:
    client = world.client
    for instance in ("cluster-a", "cluster-b"):
        headers = {**basic(world.license()), "Deployd-Instance-Id": instance}
        assert client.get(SPEC_PATH, headers=headers).status_code == 200

    def instances() -> float:
        return total(scrape(client), "deployd_fleet_instances", channel="stable")

    eventually(lambda: instances() == 2)


@pytest.fixture
def guarded(world: World):
    return create_app(replace(world.settings, metrics_token=SECRET), store=world.store)


def test_with_a_token_metrics_need_it(guarded, caplog) -> None:
    client = guarded.test_client()
    caplog.set_level(logging.DEBUG)
    for headers in ({}, {"Authorization": "Bearer wrong"}, basic(SECRET, user="metrics")):
        response = client.get(METRICS_PATH, headers=headers)
        assert error_of(response) == (401, "metrics_unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert SECRET not in response.get_data(as_text=True)
    assert "deployd_http_requests_total" in str(scrape(client, SECRET))
    assert SECRET not in caplog.text
    assert SECRET not in repr(guarded.extensions["deployd"].settings)


def test_metrics_off_serves_no_route_and_counts_no_poll(world: World) -> None:
    client = create_app(replace(world.settings, metrics="off"), store=world.store).test_client()
    assert error_of(client.get(METRICS_PATH)) == (404, "not_found")
    assert client.get(SPEC_PATH, headers=basic(world.license())).status_code == 200
    assert client.application.extensions["deployd"].spec_counter is None


def production(world: World, **changes) -> Settings:
    """The world's settings as a server on Redis has them (own signing key, REDIS_URL set)."""
    signing_key, _ = write_key_pair(generate_private_key("EdDSA"), world.root / "signing", "s-1")
    return replace(
        world.settings, redis_url="redis://127.0.0.1:1/0", signing_key=str(signing_key), **changes
    )


def test_production_refuses_to_serve_metrics_openly(world: World) -> None:
    on_redis = production(world, metrics="on")
    with pytest.raises(ConfigError, match="DEPLOYD_METRICS_TOKEN"):
        create_app(on_redis, store=world.store)


@pytest.mark.parametrize(
    ("changes", "served"),
    [
        ({}, False),  # auto on Redis without a token: not served
        ({"metrics_token": SECRET}, True),
        ({"metrics": "open"}, True),  # explicitly allowed
        ({"metrics": "on", "metrics_port": 9100}, False),  # on its own port, not the API's
    ],
)
def test_which_production_settings_serve_metrics_on_the_api_port(
    world: World, changes: dict, served: bool
) -> None:
    client = create_app(production(world, **changes), store=world.store).test_client()
    response = client.get(METRICS_PATH)
    if served and "metrics_token" not in changes:
        assert response.status_code == 200
    elif served:
        assert error_of(response) == (401, "metrics_unauthorized")
    else:
        assert error_of(response) == (404, "not_found")
