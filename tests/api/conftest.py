from __future__ import annotations

import pytest

from deployd.publishing import seed_store
from deployd.server.app import create_app
from deployd.server.settings import Settings
from deployd.store.memory import MemoryStore
from tests.support.factories import make_license_kit, write_channels


@pytest.fixture
def kit(tmp_path):
    return make_license_kit(tmp_path)


@pytest.fixture
def settings(tmp_path, kit):
    return Settings(
        keys_dir=str(kit.keys_dir),
        channels_dir=str(write_channels(tmp_path / "channels")),
        state_dir=str(tmp_path / "state"),
        refresh_interval=0.01,
    )


@pytest.fixture
def store(settings):
    store = MemoryStore()
    seed_store(store, settings.channels_dir)
    return store


@pytest.fixture
def app(settings, store):
    return create_app(settings, store=store)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def license(kit):
    return kit.issue(channel="stable", channels=["stable", "beta"])
