"""Which release a license gets: staged rollouts, anonymous callers and required stepping stones."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deployd.channels import Channel, Release, channel_from_document, load_channel_file
from deployd.channels.selection import admits, rollout_bucket, select_release
from deployd.errors import NotFoundError

STABLE_SAMPLE = Path(__file__).resolve().parent.parent / "channels" / "stable.yaml"
LICENSES = [f"lic-{i:05d}" for i in range(2000)]


def channel(*releases: tuple[str, int, bool]) -> Channel:
    """A channel of (version, rollout, required) releases, all installable from one chart path."""
    return channel_from_document(
        {
            "name": "stable",
            "chart": {"path": "./chart"},
            "releases": [
                {"version": version, "rollout": rollout, "required": required}
                for version, rollout, required in releases
            ],
        }
    )


def release(version: str = "1.0.0", rollout: int = 100) -> Release:
    return channel((version, rollout, False)).newest


def pick(ch: Channel, current: str | None = None, customer: str | None = "lic-1") -> str:
    return select_release(ch, customer=customer, current_version=current).version


# --- buckets


@pytest.mark.parametrize(
    ("customer", "version", "bucket"),
    [
        ("lic-0001", "1.5.0", 73),
        ("lic-0001", "1.4.0", 53),
        ("acme-2026-001", "1.5.0", 65),
        ("", "1.0.0", 6),
    ],
)
def test_buckets_are_fixed_values_that_never_change_between_releases_of_deployd(
    customer: str, version: str, bucket: int
) -> None:
    # Changing the hash would silently move licenses in or out of every running rollout.
    assert rollout_bucket(customer, version) == bucket


@given(st.text(max_size=40), st.text(max_size=20))
def test_a_bucket_is_between_0_and_99_and_deterministic(customer: str, version: str) -> None:
    bucket = rollout_bucket(customer, version)
    assert 0 <= bucket <= 99
    assert rollout_bucket(customer, version) == bucket


def test_buckets_spread_evenly_over_licenses() -> None:
    quarter = release(rollout=25)
    admitted = sum(admits(quarter, customer) for customer in LICENSES)
    assert 0.21 * len(LICENSES) < admitted < 0.29 * len(LICENSES)


def test_each_release_draws_its_own_buckets() -> None:
    older, newer = release("1.4.0", 50), release("1.5.0", 50)
    first = {lic for lic in LICENSES if admits(older, lic)}
    second = {lic for lic in LICENSES if admits(newer, lic)}
    assert first != second
    assert 0.4 < len(first & second) / len(first) < 0.6


# --- admission


@given(st.text(max_size=40), st.integers(0, 100), st.integers(0, 100))
def test_admission_never_flips_back_as_the_rollout_rises(
    customer: str, low: int, high: int
) -> None:
    low, high = min(low, high), max(low, high)
    if admits(release(rollout=low), customer):
        assert admits(release(rollout=high), customer)


def test_a_license_is_admitted_when_its_bucket_is_below_the_rollout() -> None:
    bucket = rollout_bucket("lic-0001", "1.5.0")
    assert not admits(release("1.5.0", bucket), "lic-0001")
    assert admits(release("1.5.0", bucket + 1), "lic-0001")


@pytest.mark.parametrize("customer", ["lic-0001", "acme-2026-001", "", None])
def test_rollout_100_admits_everyone_and_rollout_0_no_one(customer: str | None) -> None:
    assert admits(release(rollout=100), customer)
    assert not admits(release(rollout=0), customer)


@pytest.mark.parametrize("rollout", [1, 50, 99])
def test_anonymous_callers_only_get_releases_at_100_percent(rollout: int) -> None:
    assert not admits(release(rollout=rollout), None)
    ch = channel(("1.0.0", 100, False), ("1.1.0", rollout, False))
    assert pick(ch, customer=None) == "1.0.0"


# --- selection

STEPPING = channel(
    ("1.1.0", 100, False),
    ("1.2.0", 100, False),
    ("1.3.0", 100, True),
    ("1.4.0", 100, False),
    ("1.5.0", 100, False),
)


@pytest.mark.parametrize(
    ("current", "served"),
    [
        (None, "1.5.0"),  # a new install goes straight to the newest
        ("1.1.0", "1.3.0"),  # below the required floor: the floor first
        ("1.2.9", "1.3.0"),
        ("1.3.0-rc.1", "1.3.0"),  # a prerelease of the floor is below it
        ("1.3.0", "1.5.0"),  # at the floor: onwards to the newest
        ("1.4.0", "1.5.0"),
        ("1.5.0", "1.5.0"),
        ("2.0.0", "1.5.0"),  # ahead of the channel: the channel's newest is what it gets
        ("v1.1.0", "1.3.0"),
        ("1.1.0+build.9", "1.3.0"),
        ("not-a-version", "1.5.0"),  # a header that is not semver is ignored
        ("", "1.5.0"),
    ],
)
def test_a_client_steps_through_the_required_release(current: str | None, served: str) -> None:
    assert pick(STEPPING, current) == served


def test_a_client_steps_through_every_required_floor_in_turn() -> None:
    ch = channel(
        ("1.0.0", 100, False),
        ("1.1.0", 100, True),
        ("1.2.0", 100, False),
        ("1.3.0", 100, True),
        ("1.4.0", 100, False),
    )
    path = ["1.0.0"]
    while (served := pick(ch, path[-1])) != path[-1]:
        path.append(served)
    assert path == ["1.0.0", "1.1.0", "1.3.0", "1.4.0"]


def test_a_required_newest_release_is_simply_the_newest() -> None:
    ch = channel(("1.0.0", 100, False), ("1.1.0", 100, True))
    assert pick(ch, "1.0.0") == "1.1.0"


def test_required_releases_below_the_current_version_are_not_served_again() -> None:
    ch = channel(("1.0.0", 100, True), ("1.1.0", 100, False), ("1.2.0", 100, False))
    assert pick(ch, "1.1.0") == "1.2.0"


def test_a_required_release_not_rolled_out_to_the_license_is_skipped() -> None:
    ch = channel(("1.1.0", 100, False), ("1.3.0", 0, True), ("1.5.0", 100, False))
    assert pick(ch, "1.1.0") == "1.5.0"


def test_the_newest_release_is_the_newest_admitted_one() -> None:
    ch = channel(("1.4.0", 100, False), ("1.5.0", 25, False))
    outside = next(lic for lic in LICENSES if not admits(ch.newest, lic))
    inside = next(lic for lic in LICENSES if admits(ch.newest, lic))
    assert pick(ch, customer=outside) == "1.4.0"
    assert pick(ch, customer=inside) == "1.5.0"


def test_a_required_release_above_the_newest_admitted_is_not_served() -> None:
    # The floor only matters once the license is rolled out to something above it.
    ch = channel(("1.1.0", 100, False), ("1.2.0", 100, False), ("1.3.0", 20, True))
    outside = next(lic for lic in LICENSES if not admits(ch.newest, lic))
    assert pick(ch, "1.1.0", customer=outside) == "1.2.0"


def test_prereleases_rank_below_their_release_and_numerically_among_themselves() -> None:
    ch = channel(
        ("1.5.0", 100, False),
        ("1.5.0-beta.10", 100, False),
        ("1.5.0-beta.2", 100, False),
        ("1.5.0-rc.1", 100, True),
        ("1.4.0", 100, False),
    )
    assert [r.version for r in ch.releases] == [
        "1.4.0",
        "1.5.0-beta.2",
        "1.5.0-beta.10",
        "1.5.0-rc.1",
        "1.5.0",
    ]
    assert pick(ch) == "1.5.0"
    assert pick(ch, "1.5.0-beta.2") == "1.5.0-rc.1"
    assert pick(ch, "1.5.0-rc.1") == "1.5.0"


@pytest.mark.parametrize("customer", [None, "lic-0001"])
def test_nothing_admitted_is_a_not_found_no_release(customer: str | None) -> None:
    ch = channel(("1.0.0", 0, False), ("1.1.0", 0, True))
    with pytest.raises(NotFoundError) as caught:
        select_release(ch, customer=customer, current_version="0.9.0")
    assert caught.value.code == "no_release"
    assert caught.value.status == 404
    assert "stable" in caught.value.message


def test_the_error_never_names_the_license() -> None:
    with pytest.raises(NotFoundError) as caught:
        select_release(channel(("1.0.0", 0, False)), customer="lic-secret", current_version=None)
    assert "lic-secret" not in caught.value.message


def test_the_stable_sample_serves_the_demo_it_describes() -> None:
    stable = load_channel_file(STABLE_SAMPLE)
    assert stable.newest.version == "1.5.0"
    assert pick(stable, customer=None) == "1.4.1"
    assert pick(stable, "1.2.0", customer=None) == "1.3.0"
    served = {pick(stable, customer=lic) for lic in LICENSES[:200]}
    assert served == {"1.4.1", "1.5.0"}


def test_a_halted_release_is_served_only_to_instances_already_on_it() -> None:
    from deployd.channels import parse_channel_text
    from tests.support.factories import CHANNEL_YAML

    channel = parse_channel_text(
        CHANNEL_YAML.format(name="stable") + "  - version: 1.3.0\n    chart: {version: 0.13.0}\n",
        filename="stable.yaml",
    )
    halted = frozenset({"1.3.0"})

    def pick(current: str | None) -> str:
        return select_release(
            channel, customer="acme", current_version=current, halted=halted
        ).version

    assert pick(None) == "1.2.0"
    assert pick("1.2.0") == "1.2.0"
    assert pick("1.3.0") == "1.3.0"
    assert pick("1.0.0") == "1.1.0"  # required stepping still applies
    assert select_release(channel, customer="acme", current_version=None).version == "1.3.0"
