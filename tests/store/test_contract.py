"""The Store contract: every backend (memory, fakeredis, real Redis) keeps the same promises."""

from __future__ import annotations

import re

import pytest

from deployd.errors import ConflictError, PreconditionFailedError, StoreUninitializedError
from deployd.store import ALL_CHANNELS, ChannelRecord, StoreMarker
from deployd.store.memory import MemoryStore

RFC3339_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def publish(store, name="stable", n=1, **kwargs) -> ChannelRecord:
    """Publish a small document numbered `n` (its digest is a stand-in: the store never checks)."""
    return store.publish(
        name,
        document={"name": name, "releases": [{"version": f"1.{n}.0"}]},
        source=f"name: {name}  # {n}\n",
        digest=f"digest-{n}",
        publisher="tester",
        summary=f"version {n}",
        **kwargs,
    )


def test_an_empty_store_has_nothing(store):
    store.ping()
    assert store.sequences() == {}
    assert store.get_channel("stable") is None
    assert store.history("stable") == []
    assert store.history_entry("stable", 1) is None
    assert store.generation() == 0
    assert store.is_revoked("jti-1") is False
    assert store.revocations_since(0) == ([], 0)


def test_publish_returns_the_record_it_made_current(store):
    record = publish(store)
    assert record == ChannelRecord(
        name="stable",
        sequence=1,
        document={"name": "stable", "releases": [{"version": "1.1.0"}]},
        source="name: stable  # 1\n",
        digest="digest-1",
        published_at=record.published_at,
        publisher="tester",
        summary="version 1",
    )
    assert RFC3339_UTC.fullmatch(record.published_at)
    assert store.get_channel("stable") == record
    assert store.sequences() == {"stable": 1}


def test_each_publish_moves_the_sequence_by_one(store):
    assert [publish(store, n=n).sequence for n in (1, 2, 3)] == [1, 2, 3]
    current = store.get_channel("stable")
    assert (current.sequence, current.digest) == (3, "digest-3")
    assert store.sequences() == {"stable": 3}


def test_channels_have_their_own_sequences(store):
    publish(store, "stable", 1)
    publish(store, "stable", 2)
    publish(store, "beta", 1)
    assert store.sequences() == {"stable": 2, "beta": 1}
    assert store.get_channel("beta").document["name"] == "beta"
    assert [r.name for r in store.history("beta")] == ["beta"]


def test_history_keeps_every_version_oldest_first(store):
    published = [publish(store, n=n) for n in range(1, 13)]
    history = store.history("stable")
    assert history == published
    assert [r.sequence for r in history] == list(range(1, 13))
    assert store.history_entry("stable", 2) == published[1]
    assert store.history_entry("stable", 12) == published[11]


@pytest.mark.parametrize("sequence", [0, -1, 4, 100])
def test_history_entry_outside_the_history_is_none(store, sequence):
    for n in (1, 2, 3):
        publish(store, n=n)
    assert store.history_entry("stable", sequence) is None


def test_expected_sequence_zero_creates_a_new_channel(store):
    assert publish(store, expected_sequence=0).sequence == 1


def test_expected_sequence_that_matches_publishes(store):
    publish(store, n=1)
    assert publish(store, n=2, expected_sequence=1).sequence == 2


@pytest.mark.parametrize(
    ("already_published", "expected_sequence"),
    [
        (0, 1),  # the channel does not exist yet
        (0, 5),
        (1, 0),  # "create" when it exists
        (2, 1),  # stale: someone published in between
        (2, 3),  # from the future
        (2, -1),
    ],
)
def test_expected_sequence_that_does_not_match_changes_nothing(
    store, already_published, expected_sequence
):
    for n in range(1, already_published + 1):
        publish(store, n=n)
    before = (store.sequences(), store.history("stable"), store.generation())
    with pytest.raises(PreconditionFailedError) as raised:
        publish(store, n=9, expected_sequence=expected_sequence)
    assert (raised.value.status, raised.value.code) == (412, "sequence_conflict")
    assert f"at sequence {already_published}" in raised.value.message
    assert (store.sequences(), store.history("stable"), store.generation()) == before


def test_generation_moves_on_publish_and_revocation_only(store):
    assert store.generation() == 0
    publish(store, n=1)
    assert store.generation() == 1
    publish(store, "beta", n=1)
    assert store.generation() == 2
    store.revoke("jti-1")
    assert store.generation() == 3
    store.revoke("jti-1")
    with pytest.raises(PreconditionFailedError):
        publish(store, n=2, expected_sequence=0)
    store.get_channel("stable")
    store.history("stable")
    store.is_revoked("jti-1")
    assert store.generation() == 3


def test_revoke_is_idempotent(store):
    assert store.revoke("jti-1", reason="leaked", by="alice") is True
    assert store.is_revoked("jti-1") is True
    assert store.revoke("jti-1", reason="again", by="bob") is False
    assert store.is_revoked("jti-1") is True
    assert store.is_revoked("jti-2") is False
    assert store.revocations_since(0) == (["jti-1"], 1)


def test_revocation_log_reads_incrementally(store):
    store.revoke("a")
    store.revoke("b")
    new, offset = store.revocations_since(0)
    assert (new, offset) == (["a", "b"], 2)
    assert store.revocations_since(offset) == ([], 2)
    store.revoke("c")
    store.revoke("a")  # already revoked: not logged again
    assert store.revocations_since(offset) == (["c"], 3)
    assert store.revocations_since(1) == (["b", "c"], 3)
    assert store.revocations_since(3) == ([], 3)


def test_revocation_log_refuses_a_negative_offset(store):
    with pytest.raises(ValueError, match="offset"):
        store.revocations_since(-1)


def test_documents_given_and_taken_are_copies(store):
    document = {"name": "stable", "values": {"tag": "1"}}
    published = store.publish(
        "stable", document=document, source="", digest="d", publisher="p", summary="s"
    )
    document["values"]["tag"] = "changed by the caller"
    store.get_channel("stable").document["values"]["tag"] = "changed by a reader"
    store.history("stable")[0].document["values"]["tag"] = "changed by a reader"
    assert store.get_channel("stable").document == {"name": "stable", "values": {"tag": "1"}}
    assert store.history_entry("stable", 1).document == {"name": "stable", "values": {"tag": "1"}}
    assert published.sequence == 1


def test_text_round_trips_exactly(store):
    document = {"name": "stable", "description": 'Grüße, 日本, emoji \U0001f680, "quotes"\n'}
    source = "name: stable\ndescription: Grüße \U0001f680\r\n\ttab\n"
    store.publish(
        "stable", document=document, source=source, digest="d", publisher="jörg", summary="✓"
    )
    record = store.get_channel("stable")
    assert (record.document, record.source, record.publisher, record.summary) == (
        document,
        source,
        "jörg",
        "✓",
    )


@pytest.mark.parametrize("bad", [float("nan"), {1, 2}, object()], ids=["nan", "set", "object"])
def test_a_document_that_is_not_json_is_refused_and_nothing_changes(store, bad):
    with pytest.raises((TypeError, ValueError)):
        store.publish(
            "stable", document={"x": bad}, source="", digest="d", publisher="p", summary="s"
        )
    assert store.sequences() == {}
    assert store.get_channel("stable") is None
    assert store.generation() == 0
    assert publish(store, expected_sequence=0).sequence == 1


# --- identity, floors, export and restore (deployd/store/__init__.py)


def test_an_uninitialised_store_takes_no_publish_or_revocation(uninitialized_store):
    store = uninitialized_store
    assert store.marker() == StoreMarker(epoch=None, generation=0)
    with pytest.raises(StoreUninitializedError, match="deployd store init") as raised:
        publish(store)
    assert (raised.value.status, raised.value.code) == (503, "store_uninitialized")
    with pytest.raises(StoreUninitializedError, match="deployd store init"):
        store.revoke("jti-1")
    assert (store.sequences(), store.revocations_since(0)) == ({}, ([], 0))
    epoch = store.initialize()
    assert store.marker() == StoreMarker(epoch=epoch, generation=0)
    assert publish(store).sequence == 1
    assert store.revoke("jti-1") is True


def test_a_store_is_initialised_once(store):
    epoch = store.marker().epoch
    assert epoch
    with pytest.raises(ConflictError, match="initialised already"):
        store.initialize()
    publish(store)
    assert store.marker() == StoreMarker(epoch=epoch, generation=1)


def test_publishes_go_above_the_floors_and_floors_never_go_down(store):
    publish(store, n=1)
    store.raise_floors({"stable": 5})
    store.raise_floors({"stable": 3, "beta": 2})
    assert store.floors() == {"stable": 5, "beta": 2}
    assert publish(store, n=2).sequence == 6
    assert publish(store, n=3, expected_sequence=6).sequence == 7
    assert [r.sequence for r in store.history("stable")] == [1, 6, 7]
    assert store.history_entry("stable", 6).digest == "digest-2"
    assert store.history_entry("stable", 2) is None
    store.raise_floors({ALL_CHANNELS: 10})
    assert publish(store, "beta").sequence == 11
    assert publish(store, "stable", n=4).sequence == 11
    assert store.sequences() == {"stable": 11, "beta": 11}


def test_initialising_can_start_above_a_floor(uninitialized_store):
    store = uninitialized_store
    store.raise_floors({"stable": 4})  # a worker recorded what it served before the loss
    store.initialize(floors={ALL_CHANNELS: 7, "stable": 2})
    assert store.floors() == {ALL_CHANNELS: 7, "stable": 4}
    assert publish(store).sequence == 8


def fill(store) -> None:
    for n in (1, 2, 3):
        publish(store, n=n)
    publish(store, "beta", n=1)
    store.raise_floors({"beta": 4})
    store.revoke("jti-b", reason="leaked", by="alice")
    store.revoke("jti-a")
    store.add_publisher("ci", "a" * 64)
    store.add_publisher("old", "b" * 64)
    store.revoke_publisher("old")


def test_export_then_restore_gives_back_everything(store):
    fill(store)
    saved = store.export()
    assert saved.epoch == store.marker().epoch
    assert [r.sequence for r in saved.channels["stable"]] == [1, 2, 3]
    assert [jti for jti, _ in saved.revocations] == ["jti-b", "jti-a"]
    assert saved.high_water_marks() == {"stable": 3, "beta": 4}
    publish(store, n=4)
    store.revoke("jti-c")
    store.add_publisher("late", "c" * 64)

    with pytest.raises(ConflictError, match="--force"):
        store.restore(saved)
    epoch = store.restore(saved, force=True)

    assert epoch not in (None, saved.epoch), "a restore is a new store identity"
    again = store.export()
    assert (again.channels, again.revocations, again.publishers) == (
        saved.channels,
        saved.revocations,
        saved.publishers,
    )
    assert store.get_channel("stable") == saved.channels["stable"][-1]
    assert store.sequences() == {"stable": 3, "beta": 1}
    assert store.is_revoked("jti-b") and not store.is_revoked("jti-c")
    assert store.publisher_for_hash("a" * 64).name == "ci"
    assert store.publisher_for_hash("b" * 64) is None
    assert store.publisher_for_hash("c" * 64) is None
    # The revocation log went back: a reader's old offset is past its end.
    assert store.revocations_since(3) == ([], 2)
    # Sequence 4 of stable was served before the restore: it never names another document.
    assert store.floors()["stable"] == 4
    assert publish(store, n=5).sequence == 5
    assert publish(store, "beta", n=2).sequence == 5


def test_a_restore_into_an_uninitialised_store_initialises_it(uninitialized_store):
    source = MemoryStore()
    fill(source)
    saved = source.export()
    epoch = uninitialized_store.restore(saved)
    assert uninitialized_store.marker().epoch == epoch
    assert uninitialized_store.export().channels == saved.channels
    assert publish(uninitialized_store, n=9).sequence == 4
