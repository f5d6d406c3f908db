"""Rendered specs and remembered choices: fast, and never stale after a publish or a new window."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import deployd.specs.rendering
from deployd.channels import Channel, channel_from_document
from deployd.channels.selection import select_release
from deployd.errors import NotFoundError
from deployd.specs.rendering import MAX_REMEMBERED_VERSION_CHARS, SpecCache
from deployd.specs.signing import SpecSigner

WINDOW = 86_400
NOW = 1_800_000_000.0 - 1_800_000_000.0 % WINDOW + 100  # 100 s into a window
LICENSES = [f"lic-{i:04d}" for i in range(200)]


def channel(*releases: tuple[str, int, bool]) -> Channel:
    """Channel `stable` of (version, rollout, required) releases."""
    return channel_from_document(
        {
            "name": "stable",
            "chart": {"url": "https://charts.example.com", "name": "server"},
            "releases": [
                {"version": v, "rollout": rollout, "required": required, "chart": {"version": v}}
                for v, rollout, required in releases
            ],
        }
    )


STAGED = channel(
    ("1.0.0", 100, False), ("1.1.0", 100, True), ("1.2.0", 100, False), ("1.3.0", 50, False)
)


@pytest.fixture
def specs() -> SpecCache:
    signer = SpecSigner("spec-test", Ed25519PrivateKey.generate())
    return SpecCache(signer, window_seconds=WINDOW, expiry_windows=3, max_choices=50)


@pytest.fixture
def selections(monkeypatch) -> list[tuple]:
    """Every call SpecCache makes to select_release, as (license id, current version)."""
    calls: list[tuple] = []

    def counting(ch, *, customer, current_version, halted=frozenset()):
        calls.append((customer, current_version))
        return select_release(ch, customer=customer, current_version=current_version, halted=halted)

    monkeypatch.setattr(deployd.specs.rendering, "select_release", counting)
    return calls


def metadata(spec) -> dict[str, str]:
    return json.loads(spec.body)["metadata"]


def test_the_spec_is_that_of_the_release_select_release_picks(specs):
    for customer in LICENSES:
        for current in (None, "1.0.0", "1.1.0", "junk"):
            spec = specs.select(
                STAGED, sequence=1, customer=customer, current_version=current, now=NOW
            )
            expected = select_release(STAGED, customer=customer, current_version=current)
            assert spec.release == metadata(spec)["release"] == expected.version


def test_a_repeat_poll_is_answered_from_memory(specs, selections):
    first = specs.select(STAGED, sequence=1, customer="a", current_version=None, now=NOW)
    again = specs.select(STAGED, sequence=1, customer="a", current_version=None, now=NOW + 60)
    assert again is first
    assert selections == [("a", None)]


@pytest.mark.parametrize(
    "other",
    [
        {"customer": "b"},
        {"current_version": "1.0.0"},
        {"customer": None},
    ],
    ids=["another license", "another reported version", "anonymous"],
)
def test_another_caller_gets_its_own_choice(specs, selections, other):
    asked = {"customer": "a", "current_version": None, **other}
    specs.select(STAGED, sequence=1, customer="a", current_version=None, now=NOW)
    specs.select(STAGED, sequence=1, now=NOW, **asked)
    assert len(selections) == 2


def test_a_publish_is_seen_at_once(specs):
    before = specs.select(STAGED, sequence=1, customer="a", current_version=None, now=NOW)
    promoted = channel(("1.0.0", 100, False), ("1.3.0", 100, False), ("1.4.0", 100, False))
    after = specs.select(promoted, sequence=2, customer="a", current_version=None, now=NOW)
    assert metadata(after)["release"] == "1.4.0"
    assert metadata(after)["sequence"] == "2"
    assert after.etag != before.etag


def test_a_new_window_is_a_new_spec_with_new_times(specs):
    first = specs.select(STAGED, sequence=1, customer="a", current_version=None, now=NOW)
    same = specs.select(STAGED, sequence=1, customer="a", current_version=None, now=NOW + 3600)
    later = specs.select(STAGED, sequence=1, customer="a", current_version=None, now=NOW + WINDOW)
    assert same is first
    assert later.release == first.release
    assert metadata(later)["issuedAt"] != metadata(first)["issuedAt"]
    assert metadata(later)["expires"] > metadata(first)["expires"]
    assert later.etag != first.etag


def test_choices_are_bounded_oldest_first(specs, selections):
    for customer in LICENSES[:51]:
        specs.select(STAGED, sequence=1, customer=customer, current_version=None, now=NOW)
    specs.select(STAGED, sequence=1, customer=LICENSES[50], current_version=None, now=NOW)
    assert len(selections) == 51
    specs.select(STAGED, sequence=1, customer=LICENSES[0], current_version=None, now=NOW)
    assert len(selections) == 52


def test_a_long_reported_version_is_never_remembered(specs, selections):
    junk = "1" * (MAX_REMEMBERED_VERSION_CHARS + 1)
    for _ in range(2):
        specs.select(STAGED, sequence=1, customer="a", current_version=junk, now=NOW)
    assert len(selections) == 2


def test_no_release_for_the_caller_is_an_error_every_time(specs, selections):
    dark = channel(("1.0.0", 0, False))
    for _ in range(2):
        with pytest.raises(NotFoundError) as e:
            specs.select(dark, sequence=1, customer=None, current_version=None, now=NOW)
        assert e.value.code == "no_release"
    assert len(selections) == 2


def test_a_remembered_choice_is_answered_without_the_channel(specs, selections):
    asked = {"sequence": 1, "customer": "a", "current_version": None}
    assert specs.remembered("stable", now=NOW, **asked) is None
    first = specs.select(STAGED, now=NOW, **asked)
    assert specs.remembered("stable", now=NOW + 60, **asked) is first
    assert specs.remembered("stable", now=NOW, **{**asked, "sequence": 2}) is None
    assert specs.remembered("stable", now=NOW, **{**asked, "customer": "b"}) is None
    assert specs.remembered("stable", now=NOW + WINDOW, **asked) is None, "a new window"
    assert specs.remembered("stable", now=NOW, halted=frozenset({"1.3.0"}), **asked) is None
    assert selections == [("a", None)]


def test_kept_specs_are_bounded_by_memory_least_recently_used_first(selections):
    signer = SpecSigner("spec-test", Ed25519PrivateKey.generate())
    one = SpecCache(signer, window_seconds=WINDOW, expiry_windows=3).select(
        STAGED, sequence=1, customer="x", current_version=None, now=NOW
    )
    budget = 3 * deployd.specs.rendering.spec_bytes(one)  # room for three specs of this size
    specs = SpecCache(signer, window_seconds=WINDOW, expiry_windows=3, max_bytes=budget)
    for sequence in (1, 2, 3):
        specs.select(STAGED, sequence=sequence, customer="a", current_version=None, now=NOW)
    assert len(specs) == 3 and specs.bytes <= budget
    specs.select(STAGED, sequence=1, customer="a", current_version=None, now=NOW)  # used again
    specs.select(STAGED, sequence=4, customer="a", current_version=None, now=NOW)
    assert len(specs) == 3 and specs.bytes <= budget
    asked = {"customer": "a", "current_version": None, "now": NOW}
    assert specs.remembered("stable", sequence=1, **asked) is not None
    assert specs.remembered("stable", sequence=2, **asked) is None, "the least recently used went"
    assert specs.remembered("stable", sequence=3, **asked) is not None
    # Its choice is still remembered: the spec is rendered again, identical, with no selection.
    before = len(selections)
    again = specs.select(STAGED, sequence=2, customer="a", current_version=None, now=NOW)
    assert len(selections) == before
    assert metadata(again)["sequence"] == "2"
    assert specs.remembered("stable", sequence=2, **asked) is again
    specs.clear()
    assert (len(specs), specs.bytes) == (0, 0)
