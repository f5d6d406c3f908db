from __future__ import annotations

import pytest

from deployd.cli.remote import SERVER_ENV, TOKEN_ENV
from deployd.publishing import seed_store
from deployd.server.app import create_app
from deployd.server.settings import ENVIRONMENT, Settings
from deployd.store.memory import MemoryStore
from tests.cli.live_server import serve
from tests.support.factories import make_license_kit, write_channels
from tests.support.publisher_auth import add_publisher


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Only what a test sets itself: no DEPLOYD_* or REDIS_URL from the developer's shell."""
    for name in (*ENVIRONMENT, SERVER_ENV, TOKEN_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(tmp_path):
    """The server on loopback with stable and beta (sequence 1 each); publisher token in env."""
    kit = make_license_kit(tmp_path)
    settings = Settings(
        keys_dir=str(kit.keys_dir),
        channels_dir=str(write_channels(tmp_path / "seed")),
        state_dir=str(tmp_path / "state"),
        refresh_interval=0.01,
    )
    store = MemoryStore()
    seed_store(store, settings.channels_dir)
    with serve(create_app(settings, store=store), store) as live:
        live.kit = kit
        yield live


@pytest.fixture
def token(server, monkeypatch):
    token = add_publisher(server.store, "ci")
    monkeypatch.setenv(TOKEN_ENV, token)
    return token
