from __future__ import annotations

from collections.abc import Iterator

import pytest

from deployd.metrics.registry import FLEET_INSTANCES, RELEASE_HALTED
from deployd.server import refresher
from tests.support.world import World


@pytest.fixture(autouse=True)
def only_this_tests_app() -> Iterator[None]:
    """The metrics registry is one per process, and every app's background round writes its
    gauges into it: an app an earlier test left running would keep setting its own fleet
    counts and halts beside this test's, and the pairs it set stay. Stop every refresher and
    forget the labelled gauges before the test (in production one process serves one app)."""
    refresher.stop_all()
    FLEET_INSTANCES.clear()
    RELEASE_HALTED.clear()
    yield
    refresher.stop_all()


@pytest.fixture
def world(tmp_path):
    """The embedded setup (metrics on, /metrics open) over a memory store."""
    return World(tmp_path)
