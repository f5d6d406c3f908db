"""End to end: gunicorn (and granian) workers on Redis, asked over real HTTP the way the W&B
operator asks."""

from __future__ import annotations

import time

import jwt
import pytest
import requests

from deployd.channels import parse_channel_text
from deployd.publishing import publish_channel
from tests.support.factories import CHANNEL_YAML
from tests.support.gunicorn import GunicornServer, redis_setup

# How long to wait for what must happen, however busy the machine: never a latency bound.
PATIENCE = 60.0

pytestmark = pytest.mark.e2e


@pytest.fixture
def served(tmp_path, real_redis, redis_server, server_kind):
    setup = redis_setup(tmp_path, redis_server.url)
    kit, store = setup.kit, setup.store
    env = {**setup.env, "DEPLOYD_REFRESH_INTERVAL": "0.2"}
    server = GunicornServer(env, workers=3, server=server_kind)
    server.start(tmp_path)
    try:
        yield server, kit, store
    finally:
        server.stop()


def test_operator_poll_over_gunicorn(served):
    server, kit, _ = served
    license = kit.issue(channel="stable")
    response = requests.get(
        server.url + "/api/v1/operator/channel", auth=("license", license), timeout=5
    )
    assert response.status_code == 200
    spec = response.json()
    assert spec["metadata"]["release"] == "1.2.0"
    assert all(isinstance(v, str) for v in spec["metadata"].values())
    # The signature verifies against the key the server publishes in its JWKS.
    jwks = requests.get(server.url + "/.well-known/jwks.json", timeout=5).json()
    spec_key = next(k for k in jwks["keys"] if k["deployd_role"] == "spec")
    assert spec_key["kid"] == "spec-1"
    public = jwt.PyJWK(spec_key).key
    from deployd.specs.signing import verify_signature

    assert verify_signature(
        response.headers["Deployd-Signature"], response.content, {"spec-1": public}
    )
    again = requests.get(
        server.url + "/api/v1/operator/channel",
        auth=("license", license),
        headers={"If-None-Match": response.headers["ETag"]},
        timeout=5,
    )
    assert again.status_code == 304


def test_errors_are_json_over_gunicorn(served):
    server, _, _ = served
    response = requests.get(server.url + "/api/v1/operator/channel", timeout=5)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing"
    big = requests.get(
        server.url + "/api/v1/operator/channel",
        headers={"Authorization": "Bearer " + "x" * 20_000},
        timeout=5,
    )
    assert big.status_code == 431
    assert big.json()["error"]["code"] == "header_too_large"


def _poll_until(predicate, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not seen within {timeout} s")


def test_publish_and_revocation_reach_every_worker(served):
    server, kit, store = served
    license = kit.issue(channel="stable")
    session = requests.Session()

    def releases_seen() -> set[str]:
        # New connections spread over the workers; 12 requests reach all 3 with high probability.
        seen = set()
        for _ in range(12):
            r = requests.get(
                server.url + "/api/v1/operator/channel", auth=("license", license), timeout=5
            )
            seen.add(r.json()["metadata"]["release"] if r.status_code == 200 else r.status_code)
        return seen

    assert releases_seen() == {"1.2.0"}
    text = CHANNEL_YAML.format(name="stable") + "  - version: 1.3.0\n    chart: {version: 0.13.0}\n"
    publish_channel(
        store, parse_channel_text(text, filename="stable.yaml"), source=text, publisher="e2e"
    )
    _poll_until(lambda: releases_seen() == {"1.3.0"}, timeout=PATIENCE)

    store.revoke(jwt.decode(license, options={"verify_signature": False})["jti"], reason="e2e")
    _poll_until(lambda: releases_seen() == {403}, timeout=PATIENCE)
    session.close()


def test_a_forged_forwarded_for_does_not_dodge_the_address_limit(
    tmp_path, real_redis, redis_server, server_kind
):
    # No trusted proxy (the default): the limit counts the peer, whatever X-Forwarded-For says.
    setup = redis_setup(tmp_path, redis_server.url)
    env = {
        **setup.env,
        "DEPLOYD_RATE_LIMIT_PER_ADDRESS_PER_MINUTE": "5",
        "DEPLOYD_RATE_LIMIT_PER_MINUTE": "100000",
    }
    server = GunicornServer(env, workers=1, server=server_kind)
    server.start(tmp_path)
    try:
        license = setup.kit.issue(channel="stable")
        statuses = [
            requests.get(
                server.url + "/api/v1/operator/channel",
                auth=("license", license),
                headers={"X-Forwarded-For": f"10.0.{n}.1"},
                timeout=10,
            ).status_code
            for n in range(30)
        ]
    finally:
        server.stop()
        setup.store.close()
    assert set(statuses) == {200, 429}, statuses
