"""The rollouts part of the store contract: outcomes, halts and their log, on every backend."""

from __future__ import annotations

import pytest

from deployd.rollouts.records import HALT, RESUME, OutcomeCounts, Report, RolloutEvent
from deployd.store import ROLLOUT_LOG_LENGTH
from deployd.store.redis import RolloutKeys


def report(instance: str, outcome: str, release: str = "1.3.0") -> Report:
    return Report("stable", release, instance, outcome, "", "2026-11-29T14:00:00Z", "acme")


def event(kind: str, release: str = "1.3.0", by: str = "ops") -> RolloutEvent:
    return RolloutEvent(kind, "stable", release, "2026-11-29T14:00:00Z", by, "why", {"failed": 3})


def test_each_instance_counts_once_by_its_latest_outcome(store) -> None:
    counts = store.record_outcomes(
        [report("a", "failed"), report("b", "failed"), report("a", "applied")]
    )
    assert counts == {("stable", "1.3.0"): OutcomeCounts(applied=1, failed=1)}
    counts = store.record_outcomes([report("b", "rolled_back"), report("c", "applied", "1.2.0")])
    assert counts == {
        ("stable", "1.3.0"): OutcomeCounts(applied=1, rolled_back=1),
        ("stable", "1.2.0"): OutcomeCounts(applied=1),
    }
    assert store.outcome_counts("stable") == {
        "1.3.0": OutcomeCounts(applied=1, rolled_back=1),
        "1.2.0": OutcomeCounts(applied=1),
    }
    assert store.outcome_counts("beta") == {}


def test_a_release_halts_once_and_resumes_once_moving_the_generation(store) -> None:
    store.record_outcomes([report("a", "failed"), report("b", "failed", "1.2.0")])
    before = store.marker().generation
    assert store.halt_release(event(HALT)) is True
    assert store.halt_release(event(HALT, by="policy")) is False
    assert store.marker().generation == before + 1
    assert store.halts() == {"stable": {"1.3.0": event(HALT)}}
    assert store.outcome_counts("stable")["1.3.0"] == OutcomeCounts(failed=1)
    assert store.resume_release(event(RESUME)) is True
    assert store.resume_release(event(RESUME)) is False
    # The resumed release's reports start over; other releases keep theirs.
    assert store.outcome_counts("stable") == {"1.2.0": OutcomeCounts(failed=1)}
    assert store.record_outcomes([report("a", "failed")]) == {
        ("stable", "1.3.0"): OutcomeCounts(failed=1)
    }
    assert store.marker().generation == before + 2
    assert store.halts() == {}
    assert [e.kind for e in store.rollout_events("stable")] == [HALT, RESUME]
    assert store.rollout_events("beta") == []


def test_the_rollout_log_is_bounded(store) -> None:
    for n in range(ROLLOUT_LOG_LENGTH // 2 + 1):
        assert store.halt_release(event(HALT, by=f"p{n}"))
        assert store.resume_release(event(RESUME, by=f"p{n}"))
    events = store.rollout_events("stable")
    assert len(events) == ROLLOUT_LOG_LENGTH
    assert events[-1].by == f"p{ROLLOUT_LOG_LENGTH // 2}"


def test_counts_start_over_with_outcomes_that_expired(store) -> None:
    if not hasattr(store, "client"):
        pytest.skip("only Redis expires keys")
    store.record_outcomes([report("a", "failed"), report("b", "failed", "1.2.0")])
    # As the outcomes' expiry would, after the retention time without a report on 1.3.0:
    store.client.delete(RolloutKeys(store.prefix).outcomes("stable", "1.3.0"))
    assert store.record_outcomes([report("a", "failed")]) == {
        ("stable", "1.3.0"): OutcomeCounts(failed=1)
    }
    assert store.outcome_counts("stable")["1.2.0"] == OutcomeCounts(failed=1)
