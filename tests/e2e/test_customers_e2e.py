"""End to end: a customer record changed over HTTP reaches every gunicorn worker on Redis within
the refresh interval, and its deletion too; the W&B operator's request shape (GET, Basic auth,
no other header)."""

from __future__ import annotations

import time

import pytest
import requests

from deployd.publishers import Scopes
from tests.support.gunicorn import GunicornServer, redis_setup
from tests.support.publisher_auth import add_publisher, bearer

# How long to wait for what must happen, however busy the machine: never a latency bound.
PATIENCE = 60.0

pytestmark = pytest.mark.e2e


@pytest.fixture
def served(tmp_path, real_redis, redis_server):
    setup = redis_setup(tmp_path, redis_server.url)
    # Many polls from one license and address: no rate limit in the way.
    env = {**setup.env, "DEPLOYD_REFRESH_INTERVAL": "0.2", "DEPLOYD_RATE_LIMIT": "0"}
    server = GunicornServer(env, workers=3)
    server.start(tmp_path)
    try:
        yield server, setup
    finally:
        server.stop()


def test_a_customer_record_reaches_every_worker(served):
    server, setup = served
    license = setup.kit.issue(channel="stable", channels=["stable"])
    token = add_publisher(setup.store, "support", scopes=Scopes.of(["customers"], []))
    url = server.url + "/api/v1/customers/acme"

    def served_to_acme() -> set[tuple[str, str]]:
        # New connections spread over the workers; 12 polls reach all 3 with high probability.
        seen = set()
        for _ in range(12):
            r = requests.get(
                server.url + "/api/v1/operator/channel", auth=("license", license), timeout=10
            )
            assert r.status_code == 200, r.text
            seen.add((r.json()["metadata"]["channel"], r.json()["metadata"]["release"]))
        return seen

    def until(predicate) -> None:
        deadline = time.monotonic() + PATIENCE
        while not predicate():
            assert time.monotonic() < deadline, "not seen in time"
            time.sleep(0.05)

    assert served_to_acme() == {("stable", "1.2.0")}
    answer = requests.put(
        url, json={"channel": "beta", "pinnedRelease": "1.1.0"}, headers=bearer(token), timeout=10
    )
    assert answer.status_code == 200, answer.text
    until(lambda: served_to_acme() == {("beta", "1.1.0")})
    # Every worker keeps it: a run of polls all agree.
    assert all(served_to_acme() == {("beta", "1.1.0")} for _ in range(3))
    assert requests.delete(url, headers=bearer(token), timeout=10).status_code == 200
    until(lambda: served_to_acme() == {("stable", "1.2.0")})
    shown = requests.get(url, headers=bearer(token), timeout=10).json()
    assert shown == {"subject": "acme", "record": None, "effect": []}
