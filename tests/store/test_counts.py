"""Rate-limit counters (`add_counts`): every backend (memory, fakeredis, real Redis) alike."""

from __future__ import annotations


def test_counts_add_up_within_a_window(store):
    assert store.add_counts(100, {"license:a": 1, "addr:x": 3}) == {"license:a": 1, "addr:x": 3}
    assert store.add_counts(100, {"license:a": 2}) == {"license:a": 3}
    assert store.add_counts(100, {"license:b": 1, "addr:x": 1}) == {"license:b": 1, "addr:x": 4}


def test_each_window_counts_from_zero(store):
    store.add_counts(100, {"license:a": 5})
    assert store.add_counts(101, {"license:a": 1}) == {"license:a": 1}


def test_nothing_to_add_is_nothing(store):
    assert store.add_counts(100, {}) == {}


def test_counting_leaves_channels_and_the_generation_alone(store):
    store.add_counts(100, {"license:a": 1})
    assert (store.sequences(), store.generation()) == ({}, 0)
