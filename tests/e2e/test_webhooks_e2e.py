"""End to end: webhooks from gunicorn with 3 workers on a real Redis. Every worker runs a
delivery thread; each event still reaches each receiver exactly once (one 200 per event id),
signed so that the server's JWKS verifies it, a 500 is retried, and a receiver that keeps
failing is given up on and counted."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest
import requests

from deployd.publishers import new_token, token_hash
from tests.support.gunicorn import GunicornServer, redis_setup
from tests.support.webhooks import PATIENCE, WebhookReceiver, verify_delivery

pytestmark = pytest.mark.e2e

WORKERS = 3
EVENTS = 6
ACCESS_LOG = re.compile(r"^<(\d+)>$", re.M)


@pytest.fixture
def receiver():
    receiver = WebhookReceiver({"/flaky": [500, 200], "/down": [500]})
    yield receiver
    receiver.close()


@pytest.fixture
def served(tmp_path, real_redis, redis_server, receiver):
    setup = redis_setup(tmp_path, redis_server.url)
    token = new_token()
    setup.store.add_publisher("ci", token_hash(token))
    hooks = ",".join(receiver.url(path) for path in ("/ok", "/flaky", "/down"))
    server = GunicornServer(
        {
            **setup.env,
            "DEPLOYD_RATE_LIMIT": "false",
            "DEPLOYD_WEBHOOK_URLS": hooks,
            "DEPLOYD_WEBHOOK_ALLOW_HTTP": "1",
            "DEPLOYD_WEBHOOK_ATTEMPTS": "2",
            "DEPLOYD_WEBHOOK_BACKOFF": "0.05",
            "GUNICORN_CMD_ARGS": '--access-logformat "%(p)s"',
        },
        workers=WORKERS,
    )
    server.start(tmp_path)
    try:
        yield server, token
    finally:
        server.stop()
        setup.store.close()


def wake_every_worker(server: GunicornServer) -> None:
    """Ask until each worker has answered (its background threads start on its first request)."""
    deadline = time.monotonic() + PATIENCE
    while len(set(ACCESS_LOG.findall(server.log()))) < WORKERS:
        assert time.monotonic() < deadline, "not every worker answered"
        requests.get(server.url + "/healthz", headers={"Connection": "close"}, timeout=10)


def test_each_event_reaches_each_receiver_once_from_three_workers(served, receiver):
    server, token = served
    wake_every_worker(server)
    for n in range(EVENTS):
        response = requests.post(
            f"{server.url}/api/v1/licenses/lic-{n}/revoke",
            headers={"Authorization": f"Bearer {token}", "Connection": "close"},
            timeout=10,
        )
        assert response.status_code == 200, response.text

    def delivered() -> dict[str, int]:
        return requests.get(
            server.url + "/api/v1/events/webhooks",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()["counts"]

    receiver.wait_for(lambda: delivered()["gave_up"] == EVENTS, "every event given up at /down")
    ok = [d for d in receiver.received("/ok") if d.status == 200]
    ids = Counter(d.headers["Deployd-Event-Id"] for d in ok)
    assert len(ids) == EVENTS and set(ids.values()) == {1}, ids  # no event twice
    assert sorted(d.event["data"]["jti"] for d in ok) == [f"lic-{n}" for n in range(EVENTS)]
    flaky = receiver.received("/flaky")
    assert [d.status for d in flaky[:2]] == [500, 200]  # the first event, tried again
    assert Counter(d.headers["Deployd-Event-Id"] for d in flaky if d.status == 200) == ids
    assert Counter(d.headers["Deployd-Event-Id"] for d in receiver.received("/down")) == {
        event_id: 2 for event_id in ids
    }
    jwks = requests.get(server.url + "/.well-known/jwks.json", timeout=10).json()
    assert {verify_delivery(d, jwks) for d in receiver.deliveries} == {"spec-1"}
    assert delivered() == {
        "delivered": 2 * EVENTS,
        "failed": 1 + 2 * EVENTS,
        "gave_up": EVENTS,
        "missed": 0,
    }
