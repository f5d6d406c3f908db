"""Key rotation on real gunicorn processes and a real redis-server, as the README procedure runs it.

License keys: several key ids are valid at once, and retiring one (DEPLOYD_RETIRED_KEYS) refuses
every license it signed with `key_retired`. Response-signing key: published in the JWKS before
use, then switched with the old key still listed, then dropped; operator clients that trust both
keys follow every step, a client that trusts only the old key refuses the new signature and keeps
its last good spec.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
import requests

from deployd.channels import parse_channel_text
from deployd.client.config import ClientConfig, load_trusted_keys
from deployd.client.poller import Poller, PollOutcome, PollResult
from deployd.client.verify import UNKNOWN_KEY
from deployd.keyfiles import write_key_pair
from deployd.licensing.keyring import generate_private_key
from deployd.publishing import publish_channel, seed_store
from deployd.store.redis import RedisStore
from tests.support.factories import CHANNEL_YAML, make_license_kit, write_channels
from tests.support.gunicorn import GunicornServer

pytestmark = pytest.mark.e2e

SPEC = "/api/v1/operator/channel"


@pytest.fixture
def store(redis_server, real_redis, tmp_path) -> Iterator[RedisStore]:
    store = RedisStore.from_url(redis_server.url)
    seed_store(store, write_channels(tmp_path / "channels"))
    yield store
    store.client.close()


@pytest.fixture
def serve(tmp_path, redis_server, store) -> Iterator[Callable[..., GunicornServer]]:
    """Start gunicorn with `env` (stopping the previous one first, on the same port: a redeploy)."""
    running: list[GunicornServer] = []

    def start(env: Mapping[str, str]) -> GunicornServer:
        port = {}
        if running:
            port = {"port": running[-1].port}
            running.pop().stop()
        server = GunicornServer(
            {"REDIS_URL": redis_server.url, "DEPLOYD_REFRESH_INTERVAL": "0.1", **env},
            workers=1,
            **port,
        )
        running.append(server)
        server.start(tmp_path)
        return server

    yield start
    for server in running:
        server.stop()


def spec_keys(server: GunicornServer) -> list[str]:
    keys = requests.get(server.url + "/.well-known/jwks.json", timeout=5).json()["keys"]
    return sorted(k["kid"] for k in keys if k["deployd_role"] == "spec")


def license_keys(server: GunicornServer) -> list[str]:
    keys = requests.get(server.url + "/.well-known/jwks.json", timeout=5).json()["keys"]
    return sorted(k["kid"] for k in keys if k["deployd_role"] == "license")


def status_and_code(server: GunicornServer, license: str) -> tuple[int, str | None]:
    response = requests.get(server.url + SPEC, auth=("license", license), timeout=5)
    code = response.json()["error"]["code"] if response.status_code != 200 else None
    return response.status_code, code


def test_two_license_keys_at_once_then_one_retired(tmp_path, serve):
    old = make_license_kit(tmp_path, kid="lic-2025")
    new = make_license_kit(tmp_path, kid="lic-2026")
    assert old.keys_dir == new.keys_dir
    signing_key, _ = write_key_pair(generate_private_key(), tmp_path / "signing", "spec-1")
    env = {"DEPLOYD_KEYS_DIR": str(old.keys_dir), "DEPLOYD_SIGNING_KEY": str(signing_key)}
    old_license, new_license = old.issue(), new.issue()

    server = serve(env)
    assert license_keys(server) == ["lic-2025", "lic-2026"]
    assert status_and_code(server, old_license) == (200, None)
    assert status_and_code(server, new_license) == (200, None)

    server = serve({**env, "DEPLOYD_RETIRED_KEYS": "lic-2025"})
    assert license_keys(server) == ["lic-2026"]
    assert status_and_code(server, old_license) == (401, "key_retired")
    assert status_and_code(server, old.issue()) == (401, "key_retired")
    assert status_and_code(server, new_license) == (200, None)


def test_response_signing_key_rotation_with_overlap(tmp_path, serve, store):
    kit = make_license_kit(tmp_path)
    old_key, old_pub = write_key_pair(generate_private_key(), tmp_path / "signing", "spec-2025")
    new_key, new_pub = write_key_pair(generate_private_key(), tmp_path / "signing", "spec-2026")
    base = {"DEPLOYD_KEYS_DIR": str(kit.keys_dir)}
    license = kit.issue(channel="stable")

    def poller(name: str, trusted: list[Path]) -> Poller:
        config = ClientConfig(
            server=server.url,
            license=license,
            trusted_keys=load_trusted_keys(trusted),
            cache_dir=tmp_path / name,
            connect_timeout=2,
            read_timeout=2,
            total_timeout=5,
        )
        return Poller(config)

    # Step 1: publish the new public key before using it (the server still signs with the old
    # one). A client that pins the server's JWKS now trusts both; the laggard only the old key.
    server = serve(
        {**base, "DEPLOYD_SIGNING_KEY": str(old_key), "DEPLOYD_EXTRA_SIGNING_KEYS": str(new_pub)}
    )
    assert spec_keys(server) == ["spec-2025", "spec-2026"]
    jwks = tmp_path / "jwks.json"
    jwks.write_text(requests.get(server.url + "/.well-known/jwks.json", timeout=5).text)
    follower = poller("follower", [jwks])
    assert sorted(follower.config.trusted_keys) == ["spec-2025", "spec-2026"]
    laggard = poller("laggard", [old_pub])
    for client in (follower, laggard):
        first = client.poll_once()
        assert (first.outcome, first.spec.key_id) == (PollOutcome.UPDATED, "spec-2025")

    # Step 2: sign with the new key, keep the old one listed.
    server = serve(
        {**base, "DEPLOYD_SIGNING_KEY": str(new_key), "DEPLOYD_EXTRA_SIGNING_KEYS": str(old_pub)}
    )
    assert spec_keys(server) == ["spec-2025", "spec-2026"]
    # The ETag covers the signing key: the same bytes reach clients at once, newly signed.
    switched = follower.poll_once()
    assert (switched.outcome, switched.spec.key_id) == (PollOutcome.UPDATED, "spec-2026")
    assert switched.spec.release == "1.2.0"
    text = CHANNEL_YAML.format(name="stable") + "  - version: 1.3.0\n    chart: {version: 0.13.0}\n"
    publish_channel(
        store, parse_channel_text(text, filename="stable.yaml"), source=text, publisher="e2e"
    )
    followed = _poll_until_release(follower, "1.3.0")
    assert (followed.outcome, followed.spec.key_id) == (PollOutcome.UPDATED, "spec-2026")
    refused = laggard.poll_once()
    assert refused.outcome is PollOutcome.REFUSED
    assert refused.reason == UNKNOWN_KEY
    assert "untrusted key id 'spec-2026'" in refused.message
    # The laggard keeps what it had rather than taking an unverifiable spec.
    assert (refused.spec.release, refused.spec.key_id) == ("1.2.0", "spec-2025")

    # Step 3: drop the old key from the server and from clients that have a new-key spec.
    server = serve({**base, "DEPLOYD_SIGNING_KEY": str(new_key)})
    assert spec_keys(server) == ["spec-2026"]
    follower.close()
    follower = poller("follower", [new_pub])
    assert follower.held_spec is not None and follower.held_spec.key_id == "spec-2026"
    assert follower.poll_once().outcome is PollOutcome.NOT_MODIFIED
    for client in (follower, laggard):
        client.close()


def _poll_until_release(client: Poller, release: str) -> PollResult:
    # Workers see a publish within DEPLOYD_REFRESH_INTERVAL; poll until it shows.
    deadline = time.monotonic() + 3
    while True:
        result = client.poll_once()
        if result.spec is not None and result.spec.release == release:
            return result
        assert time.monotonic() < deadline, f"release {release} never arrived: {result.message}"
        time.sleep(0.05)
