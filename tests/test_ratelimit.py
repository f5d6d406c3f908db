"""Rate limits shared across workers through batched counters; fail open when the store is down."""

from __future__ import annotations

import pytest

from deployd.errors import RateLimitedError, StoreUnavailableError
from deployd.ratelimit import SYNC_BATCH_KEYS, RateLimiter


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


def test_workers_share_one_limit():
    clock, shared = Clock(), SharedCounters()
    workers = [RateLimiter(shared.add, limit=10, sync_interval=0, clock=clock) for _ in range(3)]
    admitted = 0
    for i in range(30):
        try:
            workers[i % 3].hit("license:a")
            admitted += 1
        except RateLimitedError:
            pass
    # Each worker learns the shared total on every sync; at most one request a worker slips past.
    assert 10 <= admitted <= 12


def test_store_round_trips_are_batched():
    clock, shared = Clock(), SharedCounters()
    limiter = RateLimiter(shared.add, limit=1000, sync_interval=0.5, clock=clock)
    for _ in range(100):
        limiter.hit("k")
    assert shared.calls == 1
    clock.now += 0.5
    limiter.hit("k")
    assert shared.calls == 2
    assert shared.totals[100, "k"] == 101


def test_fails_open_when_the_store_is_down(caplog):
    clock, shared = Clock(), SharedCounters()
    shared.down = True
    limiter = RateLimiter(shared.add, limit=100, sync_interval=0, clock=clock)
    for _ in range(50):
        limiter.hit("k")
    assert "rate limits not shared" in caplog.text
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
    limiter = RateLimiter(shared.add, limit=2, sync_interval=0.5, clock=clock)
    for _ in range(3):
        limiter.count("k")
    assert not limiter.allows("k")
    with pytest.raises(RateLimitedError):
        limiter.hit("k")
    clock.now += 0.5
    limiter.count("k")
    assert shared.totals[100, "k"] == 4


def test_allows_starts_afresh_in_a_new_window():
    clock = Clock()
    limiter = RateLimiter(SharedCounters().add, limit=1, clock=clock)
    limiter.count("k")
    assert not limiter.allows("k")
    clock.now += 60
    assert limiter.allows("k")


def test_a_large_backlog_goes_out_in_slices_over_the_next_requests():
    clock, shared = Clock(), SharedCounters()
    limiter = RateLimiter(shared.add, limit=1000, sync_interval=0.5, clock=clock)
    limiter.hit("first")  # the first hit syncs at once
    keys = [f"license:{i}" for i in range(SYNC_BATCH_KEYS * 2 + 10)]
    for key in keys:
        limiter.hit(key)
    assert shared.calls == 1
    clock.now += 0.5
    batches = []
    for _ in range(4):
        before = dict(shared.totals)
        limiter.hit("first")
        batches.append(len(shared.totals) - len(before))
    # Oldest first, at most SYNC_BATCH_KEYS a request, until nothing is left to send.
    assert batches == [SYNC_BATCH_KEYS, SYNC_BATCH_KEYS, 10, 0]
    assert all(shared.totals[100, key] == 1 for key in keys)
    # "first": the hit synced at once and three sent with the slices; the fourth still pending.
    assert shared.totals[100, "first"] == 4
