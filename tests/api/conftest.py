from __future__ import annotations

import pytest

from deployd.server.app import create_app
from tests.support.world import World


@pytest.fixture
def world(tmp_path):
    """Keys, channels (stable and beta, sequence 1 each), a seeded memory store and settings."""
    return World(tmp_path)


@pytest.fixture
def kit(world):
    return world.kit


@pytest.fixture
def settings(world):
    return world.settings


@pytest.fixture
def store(world):
    return world.store


@pytest.fixture
def app(settings, store):
    # From the fixtures, not world.app: a module may replace `settings` or `store`.
    return create_app(settings, store=store)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def license(world):
    return world.license()
