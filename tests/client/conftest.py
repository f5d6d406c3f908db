from __future__ import annotations

import pytest

from deployd.client.config import ClientConfig, load_trusted_keys
from tests.client.faultserver import FaultServer
from tests.client.specs import SpecKey
from tests.support.live import serving
from tests.support.world import World

# Tiny intervals and backoff so loops run in milliseconds; timeouts short but not flaky.
FAST = {
    "poll_interval": 0.05,
    "interval_jitter": 0.1,
    "connect_timeout": 1.0,
    "read_timeout": 1.0,
    "total_timeout": 2.0,
    "backoff_base": 0.01,
    "backoff_ceiling": 0.05,
    "max_retry_after": 0.2,
}


@pytest.fixture(scope="session")
def signer() -> SpecKey:
    return SpecKey.generate("test-spec")


@pytest.fixture(scope="session")
def other_signer() -> SpecKey:
    return SpecKey.generate("other-spec")


@pytest.fixture
def fault_server():
    server = FaultServer()
    yield server
    server.stop()


@pytest.fixture
def make_config(tmp_path, signer):
    """ClientConfig with fast timings, the test signer trusted and a cache in tmp_path."""

    def make(**overrides) -> ClientConfig:
        fields = {**FAST, "trusted_keys": signer.trusted, "cache_dir": tmp_path / "cache"}
        fields.update(overrides)
        return ClientConfig(**fields)

    return make


@pytest.fixture
def live(tmp_path):
    """The real server on loopback (embedded store, dev signing key in its state dir)."""
    with serving(World(tmp_path / "server", rate_limit_enabled=False)) as server:
        yield server


@pytest.fixture
def live_config(make_config, live):
    """A fast ClientConfig pointed at the live server, trusting its signing key."""

    def make(**overrides):
        fields = {
            "server": live.url,
            "license": live.license,
            "trusted_keys": load_trusted_keys([live.signing_key]),
        }
        fields.update(overrides)
        return make_config(**fields)

    return make
