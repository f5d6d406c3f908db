from __future__ import annotations

import pytest

from tests.support.world import World


@pytest.fixture
def world(tmp_path):
    """The embedded setup (metrics on, /metrics open) over a memory store."""
    return World(tmp_path)
