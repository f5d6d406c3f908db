"""SIGTERM to the server's master (what Kubernetes sends), gunicorn's or granian's: readiness turns
503 `shutting_down` first, polls are still served during DEPLOYD_DRAIN_SECONDS, then the server
stops gracefully and exits 0."""

from __future__ import annotations

import os
import signal
import time

import pytest
import requests

from tests.support.gunicorn import GunicornServer, redis_setup

pytestmark = pytest.mark.e2e

SPEC = "/api/v1/operator/channel"


def test_sigterm_turns_readiness_off_while_polls_are_served_then_exits_zero(
    tmp_path, real_redis, redis_server, server_kind
):
    setup = redis_setup(tmp_path, redis_server.url)
    env = {**setup.env, "DEPLOYD_DRAIN_SECONDS": "8"}
    server = GunicornServer(env, workers=2, server=server_kind)
    server.start(tmp_path)
    try:
        license = setup.kit.issue(channel="stable")
        assert requests.get(server.url + "/readyz", timeout=10).status_code == 200
        assert requests.get(server.url + SPEC, auth=("license", license), timeout=10).ok
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGTERM)  # the master only, as a kubelet does

        deadline = time.monotonic() + 30
        while True:
            ready = requests.get(server.url + "/readyz", timeout=10)
            if ready.status_code == 503:
                break
            assert time.monotonic() < deadline, "readiness never turned off"
            time.sleep(0.05)
        assert ready.json()["error"]["code"] == "shutting_down"
        assert ready.json()["status"] == "shutting_down"
        assert int(ready.headers["Retry-After"]) > 0
        # Still serving while load balancers take the pod out.
        poll = requests.get(server.url + SPEC, auth=("license", license), timeout=10)
        assert poll.status_code == 200

        assert server.process.wait(timeout=60) == 0
        assert "shutting_down" in server.log()
    finally:
        server.stop()
        setup.store.close()
