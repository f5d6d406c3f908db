from __future__ import annotations

import pytest

from deployd.cli.remote import SERVER_ENV, TOKEN_ENV
from deployd.server.settings import ENVIRONMENT
from tests.support.live import serving
from tests.support.world import World


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Only what a test sets itself: no DEPLOYD_* or REDIS_URL from the developer's shell."""
    for name in (*ENVIRONMENT, SERVER_ENV, TOKEN_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(tmp_path):
    """The server on loopback with stable and beta (sequence 1 each); publisher token in env."""
    with serving(World(tmp_path / "server")) as live:
        yield live


@pytest.fixture
def token(server, monkeypatch):
    token = server.world.publisher_token("ci")
    monkeypatch.setenv(TOKEN_ENV, token)
    return token
