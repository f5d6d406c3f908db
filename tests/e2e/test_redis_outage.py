"""Redis stopped under a running server (gunicorn or granian): cached reads keep flowing, writes
and readiness say 503, license checks fail closed past the staleness bound, and everything recovers
when Redis returns.

Each test runs its own persistent redis-server (append-only file), so stopping it does not disturb
the session's shared one, and a restart on the same port keeps what was written, as production
Redis does.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import pytest
import requests

from deployd.publishers import new_token, token_hash
from deployd.store.redis import RedisStore
from tests.support.factories import CHANNEL_YAML, LicenseKit
from tests.support.gunicorn import GunicornServer, redis_setup
from tests.support.redis_server import RedisServer, free_port, require_redis_server

pytestmark = pytest.mark.e2e

SPEC = "/api/v1/operator/channel"
STORE_DOWN_WARNING = "store unreachable, serving cached state"
RATE_LIMIT_WARNING = "rate limits not shared while the store is unreachable"


def release_text(*extra: str) -> str:
    """The factories' channel `stable` with extra releases (1.3.0, 1.4.0 ...) appended."""
    text = CHANNEL_YAML.format(name="stable")
    for index, version in enumerate(extra):
        text += f"  - version: {version}\n    chart: {{version: 0.{13 + index}.0}}\n"
    return text


@dataclass
class Deployment:
    redis: RedisServer
    server: GunicornServer
    store: RedisStore  # the operator's own connection to the same Redis
    kit: LicenseKit
    publisher_token: str

    def get(self, path: str, license: str | None = None, **headers: str) -> requests.Response:
        auth = ("license", license) if license is not None else None
        return requests.get(self.server.url + path, auth=auth, headers=headers, timeout=5)

    def put_channel(self, text: str) -> requests.Response:
        """Publish channel `stable` over HTTP, as `deployd publish --server` does."""
        return requests.put(
            self.server.url + "/api/v1/channels/stable",
            data=text.encode(),
            headers=self.as_publisher({"Content-Type": "application/yaml"}),
            timeout=5,
        )

    def publish(self, text: str) -> int:
        response = self.put_channel(text)
        assert response.status_code in (200, 201), response.text
        return int(response.json()["sequence"])

    def revoke(self, license: str) -> requests.Response:
        return requests.post(
            f"{self.server.url}/api/v1/licenses/{jti_of(license)}/revoke",
            json={"reason": "e2e"},
            headers=self.as_publisher({}),
            timeout=5,
        )

    def as_publisher(self, headers: dict[str, str]) -> dict[str, str]:
        return {**headers, "Authorization": f"Bearer {self.publisher_token}"}

    def log_count(self, message: str) -> int:
        """How many JSON log lines of the server carry `message`."""
        count = 0
        for line in self.server.log().splitlines():
            if line.startswith("{") and message in json.loads(line)["message"]:
                count += 1
        return count


@pytest.fixture
def deploy(tmp_path: Path, server_kind: str) -> Iterator[Callable[..., Deployment]]:
    """Start a persistent redis-server and one worker on it (under gunicorn, then granian), with
    extra settings."""
    require_redis_server()
    started: list[Deployment] = []

    def start(**env: str) -> Deployment:
        (tmp_path / "redis").mkdir()
        redis = RedisServer(free_port(), str(tmp_path / "redis"), persistent=True)
        redis.start()
        setup = redis_setup(tmp_path, redis.url)
        kit, store = setup.kit, setup.store
        publisher_token = new_token()
        store.add_publisher("e2e", token_hash(publisher_token))
        # One worker, so "what this worker has cached" is exactly what the test has asked for.
        server = GunicornServer(
            {
                **setup.env,
                "DEPLOYD_REFRESH_INTERVAL": "0.1",
                "DEPLOYD_RATE_LIMIT_PER_MINUTE": "1000",
                **env,
            },
            workers=1,
            server=server_kind,
        )
        deployment = Deployment(redis, server, store, kit, publisher_token)
        started.append(deployment)
        server.start(tmp_path)
        server.wait_for_every_view()
        return deployment

    yield start
    for deployment in started:
        deployment.server.stop()
        deployment.store.client.close()
        deployment.redis.stop()


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> float:
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < timeout, f"not seen within {timeout} s"
        time.sleep(0.05)
    return time.monotonic() - start


def error_code(response: requests.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def jti_of(license: str) -> str:
    return jwt.decode(license, options={"verify_signature": False})["jti"]


def test_cached_reads_survive_a_redis_outage_and_everything_recovers(deploy):
    # Room for one compiled channel: stable, asked for below. Beta is never asked for before the
    # outage and finds no room when the worker compiles ahead, but the worker holds its
    # document, so it compiles beta from memory when asked for it during the outage.
    d = deploy(DEPLOYD_CHANNEL_CACHE_SIZE="1")
    license = d.kit.issue(channel="stable")
    beta_license = d.kit.issue(channel="beta")
    revoked = d.kit.issue(channel="stable")
    # Before the outage: a publish (sequence 2) and a revocation, both over HTTP.
    assert d.publish(release_text("1.3.0")) == 2
    assert d.revoke(revoked).json()["revoked"] is True
    wait_for(lambda: d.get(SPEC, revoked).status_code == 403)
    before = d.get(SPEC, license)
    assert before.status_code == 200
    assert before.json()["metadata"]["release"] == "1.3.0"
    detail = d.get("/api/v1/channels/stable", license).content
    listing = d.get("/api/v1/channels", license).content

    d.redis.stop()

    # Every read the worker can answer from memory is answered, byte for byte, for several
    # refresh (and rate-limit sync) intervals.
    outage_start = time.monotonic()
    while time.monotonic() - outage_start < 0.6:
        again = d.get(SPEC, license)
        assert again.status_code == 200
        assert again.content == before.content
        assert again.headers["Deployd-Signature"] == before.headers["Deployd-Signature"]
        time.sleep(0.02)
    not_modified = d.get(SPEC, license, **{"If-None-Match": before.headers["ETag"]})
    assert not_modified.status_code == 304
    assert d.get("/api/v1/channels/stable", license).content == detail
    assert d.get("/api/v1/channels", license).content == listing
    assert d.get("/.well-known/jwks.json").status_code == 200
    assert d.get("/healthz").status_code == 200
    # A license never seen before is verified against the last known revocation list...
    newcomer = d.kit.issue(channel="stable")
    assert d.get(SPEC, newcomer).content == before.content
    validated = requests.post(
        d.server.url + "/api/v1/licenses/validate", json={"license": newcomer}, timeout=5
    )
    assert validated.json()["valid"] is True
    # ... which still holds the revocation made before the outage.
    assert error_code(d.get(SPEC, revoked)) == (403, "revoked")

    beta = d.get(SPEC, beta_license)
    assert beta.status_code == 200
    assert beta.json()["metadata"]["channel"] == "beta"

    # What needs the store says so: 503 store_unavailable with Retry-After.
    for response in (
        d.get("/readyz"),
        d.put_channel(release_text("1.3.0", "1.4.0")),
        d.revoke(newcomer),
    ):
        assert error_code(response) == (503, "store_unavailable")
        assert int(response.headers["Retry-After"]) > 0

    # The rate limiter failed open: nothing was refused, and it said so once for each of its two
    # limiters (per license, per address), not once per request or per sync.
    assert d.log_count(RATE_LIMIT_WARNING) == 2
    assert d.log_count(STORE_DOWN_WARNING) == 1

    d.redis.start()

    wait_for(lambda: d.get("/readyz").status_code == 200)
    assert d.get(SPEC, license).content == before.content, "the publish before the outage is lost"
    assert d.get(SPEC, beta_license).status_code == 200
    assert d.publish(release_text("1.3.0", "1.4.0")) == 3
    wait_for(lambda: d.get(SPEC, license).json()["metadata"]["release"] == "1.4.0")
    assert d.get(SPEC, license).json()["metadata"]["sequence"] == "3"
    assert error_code(d.get(SPEC, revoked)) == (403, "revoked")
    assert d.log_count(RATE_LIMIT_WARNING) == 2
    assert d.log_count("store reachable again") == 1


def test_license_checks_fail_closed_once_the_revocation_list_is_too_old(deploy):
    d = deploy(DEPLOYD_REVOCATION_MAX_STALENESS="1")
    known = d.kit.issue(channel="stable")
    spec = d.get(SPEC, known)
    assert spec.status_code == 200

    d.redis.stop()
    # Inside the bound the last known list is trusted: the test above shows it with the default
    # bound, tests/test_state.py on a test clock. Here: once the bound has passed, no license is
    # trusted against a list that may miss a revocation.
    wait_for(lambda: d.get(SPEC, known).status_code == 503)
    for license in (known, d.kit.issue(channel="stable")):
        response = d.get(SPEC, license)
        assert error_code(response) == (503, "store_unavailable")
        assert "revocation list" in response.json()["error"]["message"]
        assert int(response.headers["Retry-After"]) > 0
    validated = requests.post(
        d.server.url + "/api/v1/licenses/validate", json={"license": known}, timeout=5
    )
    assert error_code(validated) == (503, "store_unavailable")

    d.redis.start()
    wait_for(lambda: d.get(SPEC, known).status_code == 200)
    assert d.get(SPEC, known).content == spec.content
