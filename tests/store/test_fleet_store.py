"""The fleet's store methods keep the same promises on memory, fakeredis and a real Redis."""

from __future__ import annotations

from deployd.fleet.model import CheckIn
from deployd.fleet.paging import Cursor, FleetQuery

CAP = 1000


def check_in(key="i1", *, subject="acme", channel="stable", served="1.0.0", seen=1000.0, **kw):
    return CheckIn(
        key=key,
        subject=subject,
        agent_id=kw.pop("agent_id", None),
        channel=channel,
        served=served,
        seen=seen,
        **kw,
    )


def test_a_check_in_makes_a_record_and_counts_it(store):
    outcome = store.record_checkins(
        [check_in(agent_version="0.3.0", kubernetes_version="1.29.4")], feed_cap=CAP
    )
    assert outcome.new == ["i1"] and outcome.refused == []
    record = store.instance("i1")
    assert (record.subject, record.channel, record.served, record.reported) == (
        "acme",
        "stable",
        "1.0.0",
        None,
    )
    assert (record.first_seen, record.last_seen) == (1000.0, 1000.0)
    assert (record.agent_version, record.kubernetes_version) == ("0.3.0", "1.29.4")
    assert store.release_counts("stable") == {"1.0.0": 1}


def test_counts_follow_the_release_an_instance_moves_to(store):
    store.record_checkins([check_in("i1"), check_in("i2")], feed_cap=CAP)
    outcome = store.record_checkins([check_in("i1", served="1.1.0", seen=2000.0)], feed_cap=CAP)
    assert outcome.new == []
    assert store.release_counts("stable") == {"1.0.0": 1, "1.1.0": 1}
    record = store.instance("i1")
    assert (record.first_seen, record.last_seen) == (1000.0, 2000.0)
    # A reported release counts over the served one; an unknown instance is ignored.
    assert store.record_reported({"i2": "0.9.0", "nobody": "1.0.0"}, feed_cap=CAP) == 1
    assert store.release_counts("stable") == {"0.9.0": 1, "1.1.0": 1}
    assert store.instance("i2").running == "0.9.0"
    assert store.instance("nobody") is None


def test_moving_channel_moves_the_count(store):
    store.record_checkins([check_in("i1")], feed_cap=CAP)
    store.record_checkins([check_in("i1", channel="beta", served="2.0.0")], feed_cap=CAP)
    assert store.release_counts("stable") == {}
    assert store.release_counts("beta") == {"2.0.0": 1}


def test_a_new_instance_past_max_instances_is_refused(store):
    first = [check_in(f"i{n}", max_instances=2) for n in range(3)]
    outcome = store.record_checkins(first, feed_cap=CAP)
    assert outcome.new == ["i0", "i1"] and outcome.refused == ["i2"]
    assert store.instance("i2") is None
    # Existing instances keep checking in; another customer is not affected.
    again = [check_in("i0", max_instances=2), check_in("o1", subject="other", max_instances=2)]
    assert store.record_checkins(again, feed_cap=CAP).refused == []


def test_expiry_removes_records_indexes_and_counts(store):
    store.record_checkins(
        [check_in("old", seen=100.0), check_in("new", seen=5000.0)],
        feed_cap=CAP,
    )
    assert store.expire_instances(1000.0, 10, feed_cap=CAP) == 1
    assert store.instance("old") is None
    assert store.release_counts("stable") == {"1.0.0": 1}
    assert [r.key for r in store.fleet_page(FleetQuery()).instances] == ["new"]
    # The expired instance freed its slot under a cap of 2.
    assert store.record_checkins([check_in("x", max_instances=2)], feed_cap=CAP).new == ["x"]


def test_expiry_goes_in_bounded_steps(store):
    store.record_checkins([check_in(f"i{n}", seen=float(n)) for n in range(5)], feed_cap=CAP)
    assert store.expire_instances(100.0, 2, feed_cap=CAP) == 2
    assert store.expire_instances(100.0, 2, feed_cap=CAP) == 2
    assert store.expire_instances(100.0, 2, feed_cap=CAP) == 1
    assert store.release_counts("stable") == {}


def test_fleet_pages_newest_first_with_filters(store):
    batch = [
        check_in(f"s{n}", seen=1000.0 + n, served="1.0.0" if n % 2 else "1.1.0") for n in range(7)
    ]
    batch += [check_in("b1", channel="beta", seen=3000.0), check_in("o1", subject="other")]
    store.record_checkins(batch, feed_cap=CAP)
    seen: list[str] = []
    query = FleetQuery(channel="stable", customer="acme", limit=3)
    while True:
        page = store.fleet_page(query)
        seen += [r.key for r in page.instances]
        if page.cursor is None:
            break
        query = FleetQuery(
            channel="stable", customer="acme", limit=3, cursor=Cursor.decode(page.cursor)
        )
    assert seen == [f"s{n}" for n in reversed(range(7))]
    assert [r.key for r in store.fleet_page(FleetQuery(release="1.1.0")).instances] == [
        "s6",
        "s4",
        "s2",
        "s0",
    ]
    assert [r.key for r in store.fleet_page(FleetQuery(seen_since=1005.0)).instances] == [
        "b1",
        "s6",
        "s5",
    ]
    assert [r.key for r in store.fleet_page(FleetQuery(customer="other")).instances] == ["o1"]


def test_paging_through_equal_last_seen_times_misses_nothing(store):
    store.record_checkins([check_in(f"i{n}", seen=1000.0) for n in range(5)], feed_cap=CAP)
    found: list[str] = []
    query = FleetQuery(limit=2)
    for _ in range(5):
        page = store.fleet_page(query)
        found += [r.key for r in page.instances]
        if page.cursor is None:
            break
        query = FleetQuery(limit=2, cursor=Cursor.decode(page.cursor))
    assert sorted(found) == [f"i{n}" for n in range(5)]


def test_the_change_feed_and_snapshots_give_every_instance(store):
    start = store.instance_snapshot("", 100)
    assert start.changes == [] and start.cursor is None
    store.record_checkins([check_in("i1"), check_in("i2", subject="other")], feed_cap=CAP)
    read = store.instance_changes(start.position, 100)
    assert read.complete
    assert [(c.key, c.subject, c.served) for c in read.changes] == [
        ("i1", "acme", "1.0.0"),
        ("i2", "other", "1.0.0"),
    ]
    store.expire_instances(5000.0, 1, feed_cap=CAP)
    later = store.instance_changes(read.position, 100)
    assert [(c.key, c.removed) for c in later.changes] == [("i1", True)]
    snapshot = store.instance_snapshot("", 100)
    assert [c.key for c in snapshot.changes] == ["i2"]


def test_a_reader_behind_a_trimmed_feed_is_told_to_reload(store):
    store.record_checkins([check_in("i0")], feed_cap=CAP)
    position = store.instance_changes(store.instance_snapshot("", 10).position, 10).position
    store.record_checkins([check_in("i0", seen=2000.0)], feed_cap=CAP)
    # A cap of 1 keeps only about the last entry (Redis trims approximately: write plenty).
    for n in range(300):
        store.record_checkins([check_in(f"j{n}")], feed_cap=1)
    assert store.instance_changes(position, 10).complete is False


def test_adoption_is_snapshotted_once_an_hour(store):
    store.record_checkins([check_in("i1"), check_in("i2", served="1.1.0")], feed_cap=CAP)
    assert store.snapshot_adoption(100, keep_hours=24) is True
    store.record_checkins([check_in("i1", served="1.1.0")], feed_cap=CAP)
    assert store.snapshot_adoption(100, keep_hours=24) is False  # another worker did it
    assert store.snapshot_adoption(101, keep_hours=24) is True
    assert store.adoption("stable", 0) == [
        (100, {"1.0.0": 1, "1.1.0": 1}),
        (101, {"1.1.0": 2}),
    ]
    assert store.adoption("stable", 101) == [(101, {"1.1.0": 2})]
    store.snapshot_adoption(130, keep_hours=24)
    assert [hour for hour, _ in store.adoption("stable", 0)] == [130]


def test_release_counts_of_many_channels_are_read_at_once(store):
    store.record_checkins(
        [
            check_in("i1", channel="stable", served="1.0.0"),
            check_in("i2", channel="stable", served="1.1.0"),
            check_in("i3", channel="beta", served="2.0.0"),
        ],
        feed_cap=CAP,
    )
    names = ["stable", "beta", "edge", *(f"ch-{i:04d}" for i in range(2500))]
    assert store.release_counts_of(names) == {
        "stable": {"1.0.0": 1, "1.1.0": 1},
        "beta": {"2.0.0": 1},
    }
    assert store.release_counts_of([]) == {}
