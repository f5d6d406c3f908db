"""The event log and the webhook lease in the store: every backend (memory, fakeredis, real
Redis) alike."""

from __future__ import annotations

import threading

from deployd.store import EventRecord


def _event(n: int, type: str = "publish", channel: str | None = "stable") -> EventRecord:
    return EventRecord(
        id=0,
        type=type,
        at="2026-11-29T12:00:00Z",
        actor="alice",
        channel=channel,
        subject=None,
        data={"n": n},
    )


def test_events_get_ids_one_after_another(store):
    stored = [store.append_event(_event(n), keep=100) for n in range(3)]
    assert [e.id for e in stored] == [1, 2, 3]
    assert stored[0] == EventRecord(
        1, "publish", "2026-11-29T12:00:00Z", "alice", "stable", None, {"n": 0}
    )


def test_the_log_keeps_only_the_newest_events(store):
    for n in range(12):
        store.append_event(_event(n), keep=5)
    events = store.read_events(limit=100, oldest_first=True)
    assert [e.id for e in events] == [8, 9, 10, 11, 12]
    # the ids go on from the last, never reused after trimming
    assert store.append_event(_event(99), keep=5).id == 13


def test_events_are_read_in_either_order_after_and_before_an_id(store):
    for n in range(10):
        store.append_event(_event(n), keep=100)
    assert [e.id for e in store.read_events(limit=3, oldest_first=False)] == [10, 9, 8]
    assert [e.id for e in store.read_events(limit=3, oldest_first=True)] == [1, 2, 3]
    assert [e.id for e in store.read_events(after=7, limit=10, oldest_first=True)] == [8, 9, 10]
    assert [e.id for e in store.read_events(before=4, limit=10, oldest_first=False)] == [3, 2, 1]
    assert [e.id for e in store.read_events(after=3, before=6, limit=10, oldest_first=True)] == [
        4,
        5,
    ]
    assert store.read_events(after=10, limit=10, oldest_first=True) == []


def test_concurrent_appends_never_share_an_id_or_leave_a_gap(store):
    def append() -> None:
        for n in range(20):
            store.append_event(_event(n), keep=1000)

    threads = [threading.Thread(target=append) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [e.id for e in store.read_events(limit=1000, oldest_first=True)] == list(range(1, 81))


def test_one_owner_at_a_time_holds_the_webhook_lease(store):
    assert store.take_webhook_lease("a", seconds=60)
    assert store.take_webhook_lease("a", seconds=60)  # renewed
    assert not store.take_webhook_lease("b", seconds=60)


def test_an_expired_lease_passes_to_another_owner(store):
    assert store.take_webhook_lease("a", seconds=0.001)
    deadline = threading.Event()
    for _ in range(1000):
        if store.take_webhook_lease("b", seconds=60):
            break
        deadline.wait(0.01)
    else:
        raise AssertionError("the lease never expired")
    assert not store.advance_webhook_cursor("a", 5, {"delivered": 1})


def test_only_the_lease_holder_moves_the_cursor_and_counts(store):
    assert store.webhook_state().cursor == 0
    store.take_webhook_lease("a", seconds=60)
    assert store.advance_webhook_cursor("a", 3, {"delivered": 2, "failed": 1})
    assert not store.advance_webhook_cursor("b", 9, {"delivered": 5})
    assert store.advance_webhook_cursor("a", 2, {"gave_up": 1})  # never goes back
    state = store.webhook_state()
    assert state.cursor == 3
    assert state.counts == {"delivered": 2, "failed": 1, "gave_up": 1}
