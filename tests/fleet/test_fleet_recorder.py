"""The check-in batch and the worker's view, on a memory store and on one that fails: bounded,
counted, and a worker that falls behind the change feed loads its view again."""

from __future__ import annotations

from deployd.errors import StoreUnavailableError
from deployd.fleet.model import CheckIn
from deployd.fleet.recorder import CheckInRecorder, FleetCounters
from deployd.fleet.service import Fleet
from deployd.store.memory import MemoryStore


class UnreachableStore(MemoryStore):
    """A store whose fleet writes fail, as Redis does when it is away."""

    def record_checkins(self, checkins, *, feed_cap):
        raise StoreUnavailableError("record check-ins: Redis at 127.0.0.1:1/0 failed")


def check_in(key: str, seen: float = 1000.0, served: str = "1.0.0") -> CheckIn:
    return CheckIn(key, "acme", None, "stable", served, seen)


def test_an_unreachable_store_loses_the_batch_and_counts_it():
    counters = FleetCounters()
    recorder = CheckInRecorder(UnreachableStore(), counters=counters, feed_cap=100, batch_size=2)
    for n in range(5):
        recorder.note(check_in(f"i{n}"))
    assert recorder.flush() is False
    assert (counters.dropped_unreachable, counters.recorded, recorder.pending) == (5, 0, 0)


def test_pending_check_ins_are_bounded_and_the_overflow_counted():
    store = MemoryStore()
    counters = FleetCounters()
    recorder = CheckInRecorder(store, counters=counters, feed_cap=100, max_pending=3)
    for n in range(5):
        recorder.note(check_in(f"i{n}"))
    recorder.note(check_in("i0", seen=2000.0))  # a waiting instance is updated, not dropped
    assert (recorder.pending, counters.dropped_full) == (3, 2)
    assert recorder.flush() is True
    assert counters.recorded == 3
    assert store.instance("i0").last_seen == 2000.0 and store.instance("i4") is None


def test_first_seen_hooks_get_only_new_instances():
    store = MemoryStore()
    recorder = CheckInRecorder(store, counters=FleetCounters(), feed_cap=100)
    seen: list[list[str]] = []
    recorder.first_seen_hooks.append(lambda checkins: seen.append([c.key for c in checkins]))
    recorder.note(check_in("a"))
    recorder.flush()
    recorder.note(check_in("a", seen=2000.0))
    recorder.note(check_in("b"))
    recorder.flush()
    assert seen == [["a"], ["b"]]


def test_a_worker_learns_other_workers_check_ins_from_the_feed():
    store = MemoryStore()
    here, there = Fleet(store, ttl_seconds=3600), Fleet(store, ttl_seconds=3600)
    for fleet in (here, there):
        fleet.sync()  # loads the (empty) view
    there.recorder.note(check_in("a", served="1.2.0"))
    there.flush()
    assert here.running_release("a") is None
    here.sync()
    there.sync()
    assert here.running_release("a") == there.running_release("a") == "1.2.0"
    there.record_report_release("a", "1.1.0")  # the rollouts part's entry point
    assert there.running_release("a") == "1.1.0"
    there.flush()
    here.sync()
    assert here.running_release("a") == "1.1.0"


def test_a_worker_behind_the_feed_cap_loads_its_view_again(monkeypatch):
    import deployd.fleet.service as service

    store = MemoryStore()
    here, there = Fleet(store, ttl_seconds=3600), Fleet(store, ttl_seconds=3600)
    here.sync()
    monkeypatch.setattr(service, "FEED_CAP", 2)
    monkeypatch.setattr(there.recorder, "feed_cap", 2)
    for n in range(6):
        there.recorder.note(check_in(f"i{n}"))
    there.flush()
    here.sync()  # finds the feed trimmed past its position: starts loading again
    here.sync()
    assert {here.running_release(f"i{n}") for n in range(6)} == {"1.0.0"}
