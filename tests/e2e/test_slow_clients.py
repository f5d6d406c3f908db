"""Slow clients (slowloris): sockets that dribble request headers must not stop the pollers.

The production configs (the checked-in gunicorn.conf.py, and granian through
deployd/server/granian.py) on real servers and redis-server, with
64 sockets sending a request head a byte a second and reconnecting whenever they are closed,
while a poller polls a valid license's spec. Only counts are asserted, never latency.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from bench.slow_clients import attack
from deployd.licensing.tokens import issue_license
from tests.support.gunicorn import REPO, GunicornServer, redis_setup

pytestmark = pytest.mark.e2e

SLOW_SOCKETS = 64
POLL_SECONDS = 10.0
POLLS_PER_SECOND = 3.0
# Generous: on a busy machine a poll may wait long, but a poll queued behind slow sockets waits
# longer still (a sync worker held by one gives it up only when the worker times out, at 30 s).
POLL_TIMEOUT_SECONDS = 30.0


@pytest.fixture
def served(tmp_path, real_redis, redis_server, server_kind):
    setup = redis_setup(tmp_path, redis_server.url)
    env = {**setup.env, "DEPLOYD_RATE_LIMIT_PER_MINUTE": "100000"}
    server = GunicornServer(env, workers=2, server=server_kind)
    server.start(tmp_path)
    try:
        yield server, setup.kit.issue(channel="stable")
    finally:
        server.stop()


def basic_auth(license: str) -> str:
    return "Basic " + base64.b64encode(f"license:{license}".encode()).decode()


def test_every_poll_is_answered_while_64_sockets_dribble_headers(served):
    server, license = served

    results, dribblers = attack(
        ("127.0.0.1", server.port),
        basic_auth(license),
        sockets=SLOW_SOCKETS,
        duration=POLL_SECONDS,
        rate=POLLS_PER_SECOND,
        timeout=POLL_TIMEOUT_SECONDS,
    )

    assert results.attempted == round(POLL_SECONDS * POLLS_PER_SECOND)
    assert results.answered == results.attempted, results.summary()
    # The attack was real: every slow socket was open while the poller ran.
    assert dribblers.opened >= SLOW_SOCKETS
    # gevent patched each worker before deployd imported redis-py (which imports ssl): otherwise
    # gevent warns about the modules it found imported already.
    assert "MonkeyPatchWarning" not in server.log()


def test_deployd_serve_answers_every_poll_while_64_sockets_dribble_headers(serve):  # noqa: F811
    url, state_dir = serve
    # The development key in keys/ signs licenses the embedded default accepts.
    license = issue_license(
        REPO / "keys" / "dev.key", customer="acme", channel="stable", expires_in=timedelta(days=1)
    )
    address = urlsplit(url)

    # Under the embedded default's limit of 60 polls a minute per license.
    results, _ = attack(
        (address.hostname, address.port),
        basic_auth(license),
        sockets=SLOW_SOCKETS,
        duration=POLL_SECONDS,
        rate=POLLS_PER_SECOND,
        timeout=POLL_TIMEOUT_SECONDS,
    )

    assert results.attempted == round(POLL_SECONDS * POLLS_PER_SECOND)
    assert results.answered == results.attempted, results.summary()
    # `deployd serve` imports redis-py; its workers must be patched before they import it again.
    assert "MonkeyPatchWarning" not in (state_dir.parent / "serve.log").read_text()
