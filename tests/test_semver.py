"""Semantic versions as semver.org 2.0.0 defines them: what parses, and how versions rank."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deployd.semver import Version


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("0.0.0", Version(0, 0, 0)),
        ("1.2.3", Version(1, 2, 3)),
        ("v1.2.3", Version(1, 2, 3)),
        ("10.20.30", Version(10, 20, 30)),
        ("1.0.0-alpha", Version(1, 0, 0, ("alpha",))),
        ("1.0.0-alpha.1", Version(1, 0, 0, ("alpha", 1))),
        ("1.0.0-0.3.7", Version(1, 0, 0, (0, 3, 7))),
        ("1.0.0-x.7.z.92", Version(1, 0, 0, ("x", 7, "z", 92))),
        ("1.0.0-x-y-z.--", Version(1, 0, 0, ("x-y-z", "--"))),
        ("1.0.0-0a", Version(1, 0, 0, ("0a",))),
        ("1.0.0-alpha+001", Version(1, 0, 0, ("alpha",), "001")),
        ("1.0.0+20130313144700", Version(1, 0, 0, (), "20130313144700")),
        ("1.0.0-beta+exp.sha.5114f85", Version(1, 0, 0, ("beta",), "exp.sha.5114f85")),
        ("1.0.0+21AF26D3----117B344092BD", Version(1, 0, 0, (), "21AF26D3----117B344092BD")),
        ("99999999999999999999.0.0", Version(99999999999999999999, 0, 0)),
    ],
)
def test_valid_versions_parse_into_their_parts(text: str, parsed: Version) -> None:
    version = Version.parse(text)
    assert (version.major, version.minor, version.patch) == (
        parsed.major,
        parsed.minor,
        parsed.patch,
    )
    assert version.prerelease == parsed.prerelease
    assert version.build == parsed.build


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "1.2",
        "1.2.3.4",
        "01.2.3",
        "1.02.3",
        "1.2.03",
        "1.2.3-",
        "1.2.3+",
        "1.2.3-+",
        "1.2.3-01",
        "1.2.3-alpha..1",
        "1.2.3+build..1",
        "1.2.3-alpha_1",
        "1.2.3-alpha#1",
        "V1.2.3",
        "vv1.2.3",
        " 1.2.3",
        "1.2.3 ",
        "1.2.3\n",
        "1.2.3\n4.5.6",
        "-1.2.3",
        "1.2.x",
        "latest",
        "1.2.3-" + "a" * 300,
    ],
)
def test_invalid_versions_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a semantic version"):
        Version.parse(text)


@pytest.mark.parametrize("value", [None, 123, 1.2, b"1.2.3", ["1.2.3"]])
def test_non_strings_are_refused_with_value_error(value: Any) -> None:
    with pytest.raises(ValueError):
        Version.parse(value)


def test_precedence_follows_the_semver_spec_example() -> None:
    chain = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "2.0.0",
        "2.1.0",
        "2.1.1",
        "10.0.0",
    ]
    versions = [Version.parse(text) for text in chain]
    assert sorted(reversed(versions)) == versions
    for lower, higher in zip(versions, versions[1:], strict=False):
        assert lower < higher
        assert higher > lower
        assert lower != higher


def test_build_metadata_and_a_leading_v_do_not_change_precedence() -> None:
    plain = Version.parse("1.2.3")
    assert Version.parse("v1.2.3") == plain
    assert Version.parse("1.2.3+build.1") == plain
    assert Version.parse("1.2.3+build.2") == Version.parse("1.2.3+build.1")
    assert hash(Version.parse("1.2.3+build.2")) == hash(plain)
    assert len({plain, Version.parse("v1.2.3+x")}) == 1


def test_versions_print_without_the_leading_v() -> None:
    assert str(Version.parse("v1.2.3-rc.1+b.7")) == "1.2.3-rc.1+b.7"


def test_versions_do_not_compare_with_strings() -> None:
    assert Version.parse("1.2.3") != "1.2.3"
    with pytest.raises(TypeError):
        assert Version.parse("1.2.3") < "1.2.4"  # type: ignore[operator]


NUMBER = st.integers(0, 10**6)
WORD = st.text(alphabet="abxyzAZ09-", min_size=1, max_size=6)
IDENTIFIER = st.one_of(NUMBER, WORD.filter(lambda word: not word.isdigit()))
VERSIONS = st.builds(
    Version,
    NUMBER,
    NUMBER,
    NUMBER,
    st.lists(IDENTIFIER, max_size=4).map(tuple),
    st.lists(WORD, max_size=3).map(".".join),
)


@given(VERSIONS)
def test_a_printed_version_parses_back_to_itself(version: Version) -> None:
    parsed = Version.parse(str(version))
    assert parsed == version
    assert (parsed.prerelease, parsed.build) == (version.prerelease, version.build)


@given(VERSIONS, VERSIONS)
def test_precedence_is_a_total_order(a: Version, b: Version) -> None:
    assert (a < b) + (a == b) + (a > b) == 1
    if a == b:
        assert hash(a) == hash(b)


@given(VERSIONS, VERSIONS)
def test_the_core_version_ranks_before_any_prerelease(a: Version, b: Version) -> None:
    if (a.major, a.minor, a.patch) != (b.major, b.minor, b.patch):
        assert (a < b) == ((a.major, a.minor, a.patch) < (b.major, b.minor, b.patch))
    elif a.prerelease and not b.prerelease:
        assert a < b
