"""Store metrics against a real redis-server: operations timed, failures counted, a replaced
store noticed (deployd_store_resets_total)."""

from __future__ import annotations

import pytest

from deployd.errors import StoreUnavailableError
from deployd.protocol import METRICS_PATH, SPEC_PATH
from deployd.store.redis import RedisStore
from tests.support.http import basic
from tests.support.metrics import Samples, parse, value
from tests.support.polling import eventually
from tests.support.redis_server import free_port, initialize
from tests.support.world import World

pytestmark = pytest.mark.redis_server

TIMED = "deployd_store_operation_duration_seconds_count"
FAILED = "deployd_store_errors_total"


def scrape(world: World) -> Samples:
    response = world.client.get(METRICS_PATH)
    assert response.status_code == 200
    return parse(response.get_data(as_text=True))


@pytest.fixture
def world(tmp_path, real_redis):
    return World(tmp_path, store=RedisStore(real_redis))


def test_store_operations_are_timed_by_operation(world: World) -> None:
    before = scrape(world)
    world.store.sequences()
    world.store.get_channel("stable")
    after = scrape(world)
    for operation in ("read sequences", "read channel"):
        assert (
            value(after, TIMED, operation=operation) - value(before, TIMED, operation=operation)
            >= 1
        )


def test_a_failed_store_operation_is_counted(world: World) -> None:
    before = scrape(world)
    nobody = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailableError):
        nobody.generation()
    after = scrape(world)
    operation = "read generation"
    assert (
        value(after, FAILED, operation=operation) - value(before, FAILED, operation=operation) == 1
    )


def test_a_replaced_store_is_counted_as_a_reset(world: World, real_redis) -> None:
    assert world.client.get(SPEC_PATH, headers=basic(world.license())).status_code == 200
    before = value(scrape(world), "deployd_store_resets_total")
    real_redis.flushall()
    initialize(real_redis)  # a new epoch: not the store the worker read

    def resets() -> float:
        world.client.get("/healthz")  # keeps the refresher running in this process
        return value(scrape(world), "deployd_store_resets_total") - before

    eventually(lambda: resets() >= 1)
