"""Rate limits shared across workers through budgets reserved in the store, synced off the request
path; bounded overshoot across workers; fail open when the store is down."""

from __future__ import annotations

import random

import pytest

from deployd.errors import RateLimitedError, StoreUnavailableError
from deployd.server.ratelimit import SYNC_BATCH_KEYS, RateLimiter, overshoot_bound


class Clock:
    def __init__(self, now: float = 6_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class SharedCounters:
    """What the store provides: per-window totals shared by every process."""

    def __init__(self) -> None:
        self.totals: dict[tuple[int, str], int] = {}
        self.down = False
        self.calls = 0

    def add(self, window, increments):
        self.calls += 1
        if self.down:
            raise StoreUnavailableError("redis is down")
        for key, n in increments.items():
            self.totals[window, key] = self.totals.get((window, key), 0) + n
        return {key: self.totals[window, key] for key in increments}


def test_limit_applies_and_says_when_to_retry():
    clock = Clock(6_000.0 + 15)
    limiter = RateLimiter(SharedCounters().add, limit=3, clock=clock)
    for _ in range(3):
        limiter.hit("license:a")
    with pytest.raises(RateLimitedError) as e:
        limiter.hit("license:a")
    assert e.value.retry_after == 45
    assert e.value.status == 429
    limiter.hit("license:b")  # other keys are unaffected


def test_new_window_starts_fresh():
    clock = Clock()
    limiter = RateLimiter(SharedCounters().add, limit=1, clock=clock)
    limiter.hit("k")
    with pytest.raises(RateLimitedError):
        limiter.hit("k")
    clock.now += 60
    limiter.hit("k")


@pytest.mark.parametrize("seed", range(20))
def test_workers_together_stay_within_the_documented_bound(seed):
    # Three workers, syncing in a random order at random moments, hammered as hard as they let.
    clock, shared, rng = Clock(), SharedCounters(), random.Random(seed)
    workers = [RateLimiter(shared.add, limit=60, processes=3, clock=clock) for _ in range(3)]
    admitted = 0
    for _ in range(2000):
        worker = rng.choice(workers)
        if rng.random() < 0.1:
            worker.sync()
            continue
        try:
            worker.hit("license:a")
            admitted += 1
        except RateLimitedError:
            pass
    assert overshoot_bound(60, 3) == 100
    assert 60 - 3 * workers[0].credit <= admitted <= overshoot_bound(60, 3)


def test_the_worst_order_reaches_the_bound_and_no_further():
    # One worker takes the whole limit before the other two have reported their credit; they
    # spend it; from then on nobody is granted anything.
    clock, shared = Clock(), SharedCounters()
    workers = [RateLimiter(shared.add, limit=60, processes=3, clock=clock) for _ in range(3)]

    def spend(worker: RateLimiter) -> int:
        spent = 0
        while worker.allows("license:a"):
            worker.hit("license:a")
            spent += 1
        return spent

    admitted = 0
    for _ in range(50):
        admitted += spend(workers[0])
        workers[0].sync()
    assert admitted == 60
    for _ in range(50):
        for worker in workers:
            admitted += spend(worker)
            worker.sync()
    assert admitted == overshoot_bound(60, 3) == 100


def test_a_single_process_enforces_the_limit_exactly():
    clock, shared = Clock(), SharedCounters()
    limiter = RateLimiter(shared.add, limit=10, clock=clock)
    admitted = 0
    for i in range(100):
        if i % 7 == 0:
            limiter.sync()
        if limiter.allows("k"):
            limiter.hit("k")
            admitted += 1
    assert admitted == 10


def test_no_request_waits_on_the_store():
    clock, shared = Clock(), SharedCounters()
    limiter = RateLimiter(shared.add, limit=1000, processes=2, clock=clock)
    for _ in range(100):
        limiter.hit("k")
    assert shared.calls == 0, "a request went to the store"
    assert limiter.sync()
    assert shared.calls == 1


def test_fails_open_when_the_store_is_down(caplog):
    clock, shared = Clock(), SharedCounters()
    shared.down = True
    limiter = RateLimiter(shared.add, limit=100, processes=4, clock=clock)
    admitted = 0
    for _ in range(20):
        while limiter.allows("k"):
            limiter.hit("k")
            admitted += 1
        limiter.sync()
    # As if the worker were alone: the whole limit, and no more.
    assert admitted == 100
    assert "rate limits not shared" in caplog.text
    assert caplog.text.count("rate limits not shared") == 1


def test_a_sync_with_nothing_to_send_does_not_say_the_store_is_back(caplog):
    caplog.set_level("INFO", logger="deployd.server.ratelimit")
    clock, shared = Clock(), SharedCounters()
    limiter = RateLimiter(shared.add, limit=100, processes=4, clock=clock)
    limiter.hit("k")
    assert limiter.sync()  # reported: nothing left unreported
    shared.down = True
    while not caplog.text.count("rate limits not shared"):
        limiter.hit("k")  # spend the allowance until a sync has to ask the store, and fails
        limiter.sync()
    for _ in range(3):
        limiter.hit("k")  # failing open, the worker's own allowance covers these: nothing to send
        limiter.sync()
    assert "shared again" not in caplog.text, "the store never answered"
    assert caplog.text.count("rate limits not shared") == 1


# --- allows and count: deciding first, counting once the answer is known


def test_allows_counts_nothing():
    limiter = RateLimiter(SharedCounters().add, limit=2, clock=Clock())
    assert all(limiter.allows("k") for _ in range(10))
    limiter.hit("k")
    limiter.hit("k")
    assert not limiter.allows("k")
    assert limiter.allows("other")


def test_count_counts_without_refusing():
    clock, shared = Clock(), SharedCounters()
    limiter = RateLimiter(shared.add, limit=2, clock=clock)
    for _ in range(3):
        limiter.count("k")
    assert not limiter.allows("k")
    with pytest.raises(RateLimitedError):
        limiter.hit("k")
    limiter.sync()
    assert not limiter.allows("k"), "the sync granted budget past the limit"


def test_allows_starts_afresh_in_a_new_window():
    clock = Clock()
    limiter = RateLimiter(SharedCounters().add, limit=1, clock=clock)
    limiter.count("k")
    assert not limiter.allows("k")
    clock.now += 60
    assert limiter.allows("k")


def test_a_large_backlog_goes_out_in_slices():
    clock, shared = Clock(), SharedCounters()
    limiter = RateLimiter(shared.add, limit=1000, processes=2, clock=clock)
    keys = [f"license:{i}" for i in range(SYNC_BATCH_KEYS * 2 + 10)]
    for key in keys:
        limiter.hit(key)
    assert limiter.sync()
    # At most SYNC_BATCH_KEYS keys a store round trip.
    assert shared.calls == 3
    assert all(shared.totals[100, key] >= 1 for key in keys)
    assert limiter.sync()
    assert shared.calls == 3, "nothing used since: nothing to send"


def test_a_worker_whose_allowance_runs_low_asks_for_a_sync_at_once():
    limiter = RateLimiter(SharedCounters().add, limit=60, processes=3, clock=Clock())
    woken: list[bool] = []
    limiter.wake = lambda: woken.append(True)
    for _ in range(limiter.credit // 2 - 1):
        limiter.hit("k")
    assert not woken
    limiter.hit("k")
    assert woken
