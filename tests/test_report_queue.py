"""The worker's report queue across a Redis outage: reports wait in memory, none is lost while
the queue has room, what is lost is counted, and the flush carries on when Redis is back."""

from __future__ import annotations

import pytest

from deployd.rollouts.queue import ReportQueue
from deployd.rollouts.records import OutcomeCounts, Report
from deployd.store.redis import RedisStore
from tests.support.redis_server import RedisServer, free_port


def report(instance: str) -> Report:
    return Report("stable", "1.3.0", instance, "failed", "", "2026-11-29T14:00:00Z", "acme")


@pytest.mark.redis_server
def test_reports_wait_out_a_redis_outage_and_are_written_after_it(tmp_path) -> None:
    redis_server = RedisServer(free_port(), str(tmp_path), persistent=True)
    redis_server.start()
    store = RedisStore.from_url(redis_server.url, timeout=0.5)
    flushed: list[dict] = []
    queue = ReportQueue(store, on_flushed=flushed.append, max_queued=3)
    try:
        assert queue.offer(report("a"))
        assert queue.flush()
        redis_server.stop()
        assert queue.offer(report("b")) and queue.offer(report("c"))
        assert queue.flush() is False  # Redis is away: nothing written, nothing lost
        assert queue.counts() | {"accepted": 0} == {
            "queued": 2,
            "accepted": 0,
            "flushed": 1,
            "refused": 0,
            "dropped": 0,
            "outOfWindow": 0,
        }
        assert queue.offer(report("d"))
        assert not queue.offer(report("e"))  # full: refused and counted
        assert queue.counts()["refused"] == 1
        redis_server.start()
        assert queue.flush()
    finally:
        redis_server.stop()
        store.close()
    assert flushed[-1] == {("stable", "1.3.0"): OutcomeCounts(failed=4)}
    assert queue.counts()["queued"] == 0 and queue.counts()["flushed"] == 4
