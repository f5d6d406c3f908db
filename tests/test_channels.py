"""Channel documents: what a valid channel compiles to, and every way a channel is refused."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime
from pathlib import Path
from textwrap import dedent
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployd.channels import (
    MAX_DEPTH,
    MAX_INTEGER_DIGITS,
    MAX_NODES,
    MAX_TEXT_BYTES,
    Channel,
    channel_digest,
    channel_from_document,
    load_channel_file,
    load_channel_paths,
    parse_channel_text,
)
from deployd.errors import ChannelValidationError, Problem
from deployd.semver import Version

REPO = Path(__file__).resolve().parent.parent
SCHEMA_PATH = REPO / "deployd" / "channels" / "schema" / "channel.schema.json"
SAMPLES = sorted((REPO / "channels").glob("*.yaml"))

GOOD = """\
name: stable
description: Production releases.
chart: {url: https://charts.example.com, name: server}
values: {global: {logLevel: info}, app: {replicas: 2}}
releases:
  - version: 1.4.0
    chart: {version: 0.18.0}
    values: {app: {image: {tag: 0.59.2}}}
    releasedAt: 2026-10-01T12:00:00Z
    notes: Fixes the importer.
    required: true
    rollout: 100
  - version: 1.3.0
    chart: {version: 0.17.0}
"""


def parse(text: str | bytes, name: str | None = "stable") -> Channel:
    return parse_channel_text(text, filename="stable.yaml", expected_name=name)


def problems_of(text: str | bytes, name: str | None = "stable") -> list[Problem]:
    with pytest.raises(ChannelValidationError) as caught:
        parse(text, name)
    return caught.value.problems


def doc(text: str) -> str:
    return dedent(text).lstrip("\n")


# --- what a valid channel compiles to


def test_a_valid_channel_compiles_its_releases_in_semver_order() -> None:
    channel = parse(GOOD)
    assert channel.name == "stable"
    assert channel.description == "Production releases."
    assert [r.version for r in channel.releases] == ["1.3.0", "1.4.0"]
    assert channel.newest.version == "1.4.0"


def test_release_chart_and_values_are_deep_merged_over_the_channels() -> None:
    newest = parse(GOOD).newest
    assert newest.chart == {
        "url": "https://charts.example.com",
        "name": "server",
        "version": "0.18.0",
    }
    assert newest.values == {
        "global": {"logLevel": "info"},
        "app": {"replicas": 2, "image": {"tag": "0.59.2"}},
    }
    assert newest.notes == "Fixes the importer."
    assert newest.required is True
    assert newest.semver == Version(1, 4, 0)


def test_keys_left_out_of_a_release_take_their_defaults() -> None:
    oldest = parse(GOOD).releases[0]
    assert oldest.rollout == 100
    assert oldest.required is False
    assert oldest.notes == ""
    assert oldest.released_at is None
    assert oldest.values == {"global": {"logLevel": "info"}, "app": {"replicas": 2}}


def test_a_null_in_a_release_removes_the_channels_key() -> None:
    channel = parse(
        doc("""
        name: stable
        chart: {url: https://charts.example.com, name: server, version: 1.0.0}
        values: {debug: {enabled: true}, keep: 1}
        releases:
          - version: 1.0.0
            chart: {url: null, name: null, version: null, path: ./charts/server}
            values: {debug: null}
        """)
    )
    assert channel.newest.chart == {"path": "./charts/server"}
    assert channel.newest.values == {"keep": 1}


def test_an_oci_chart_needs_no_name_and_takes_its_version_from_a_tag() -> None:
    channel = parse(
        doc("""
        name: stable
        releases:
          - version: 1.0.0
            chart: {url: "oci://registry.example.com/charts/server:0.20.0"}
        """)
    )
    assert channel.newest.chart == {"url": "oci://registry.example.com/charts/server:0.20.0"}


@pytest.mark.parametrize(
    ("written", "normalized"),
    [
        ("2026-10-01T12:00:00Z", "2026-10-01T12:00:00Z"),
        ("2026-10-01T14:30:00+02:30", "2026-10-01T12:00:00Z"),
        ("2026-10-01 12:00:00", "2026-10-01T12:00:00Z"),  # YAML: no offset means UTC
        ("2026-10-01T12:00:00.75Z", "2026-10-01T12:00:00Z"),
        ("2026-10-01", "2026-10-01T00:00:00Z"),
        ('"2026-10-01T07:00:00-05:00"', "2026-10-01T12:00:00Z"),
        ('"2026-10-01t12:00:00z"', "2026-10-01T12:00:00Z"),
    ],
)
def test_released_at_is_normalized_to_utc_seconds(written: str, normalized: str) -> None:
    text = "name: stable\nreleases:\n  - version: 1.0.0\n    chart: {path: x}\n"
    release = parse(text + f"    releasedAt: {written}\n").newest
    assert release.released_at == normalized
    assert release.document["releasedAt"] == normalized


def test_dates_inside_values_become_iso_strings() -> None:
    channel = parse(
        doc("""
        name: stable
        values: {since: 2026-01-02, at: 2026-01-02T03:04:05+01:00}
        releases:
          - version: 1.0.0
            chart: {path: x}
        """)
    )
    assert channel.values == {"since": "2026-01-02", "at": "2026-01-02T02:04:05Z"}
    json.dumps(channel.document)


def test_the_document_keeps_what_was_written_without_defaults() -> None:
    channel = parse(GOOD)
    written = yaml.safe_load(GOOD)
    written["releases"][0]["releasedAt"] = "2026-10-01T12:00:00Z"
    assert channel.document == written
    assert channel.document["releases"][1] == {"version": "1.3.0", "chart": {"version": "0.17.0"}}
    assert channel.release("1.3.0").document == {"version": "1.3.0", "chart": {"version": "0.17.0"}}
    assert json.loads(json.dumps(channel.document)) == channel.document


def test_a_channel_rebuilt_from_its_document_is_equal() -> None:
    channel = parse(GOOD)
    assert channel_from_document(channel.document, filename="x", expected_name="stable") == channel


def test_aliases_are_expanded() -> None:
    channel = parse(
        doc("""
        name: stable
        values: {common: &common {a: 1}, copy: *common}
        releases:
          - version: 1.0.0
            chart: {path: x}
        """)
    )
    assert channel.values == {"common": {"a": 1}, "copy": {"a": 1}}


@pytest.mark.parametrize(
    ("asked", "found"),
    [("1.4.0", "1.4.0"), ("v1.4.0", "1.4.0"), ("1.4.0+build.7", "1.4.0"), ("1.5.0", None)],
)
def test_a_release_is_found_by_its_id_or_equal_precedence(asked: str, found: str | None) -> None:
    release = parse(GOOD).release(asked)
    assert (release.version if release else None) == found


def test_a_release_lookup_with_a_non_semver_id_finds_nothing() -> None:
    assert parse(GOOD).release("latest") is None


def test_digest_is_sha256_of_canonical_json_and_ignores_key_order() -> None:
    document = parse(GOOD).document
    reordered = dict(reversed(list(document.items())))
    assert channel_digest(document) == channel_digest(reordered)
    assert len(channel_digest(document)) == 64
    changed = json.loads(json.dumps(document))
    changed["releases"][0]["rollout"] = 50
    assert channel_digest(changed) != channel_digest(document)


def test_the_yaml_parser_accepts_bytes_and_a_byte_order_mark() -> None:
    assert parse(GOOD.encode()) == parse(GOOD)
    assert parse("\ufeff" + GOOD) == parse(GOOD)


def test_without_an_expected_name_any_valid_name_is_accepted() -> None:
    assert parse(GOOD.replace("name: stable", "name: edge-2"), name=None).name == "edge-2"


# --- every way a channel is refused, each with its line and field

BAD = [
    pytest.param(
        """
        name: stable
        releases:
          - version: 1.0.0
            chart: {path: x}
          - version: 1.0.0
            chart: {path: y}
        """,
        [(5, "releases[1].version", "duplicate version: releases[0].version (line 3)")],
        id="duplicate-version",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - {version: v1.0.0, chart: {path: x}}
          - {version: 1.0.0+build.2, chart: {path: x}}
        """,
        [(4, "releases[1].version", "duplicate version")],
        id="duplicate-version-by-precedence",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: "1.0"
            chart: {path: x}
        """,
        [(3, "releases[0].version", "'1.0' is not a semantic version")],
        id="bad-semver",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: "1.0.0\\n"
            chart: {path: x}
        """,
        [(3, "releases[0].version", "is not a semantic version")],
        id="version-with-a-trailing-newline",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: 1.4
            chart: {path: x}
        """,
        [(3, "releases[0].version", "must be a string (quote numbers like 1.4), not a number")],
        id="version-read-as-number",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - chart: {path: x}
        """,
        [(3, "releases[0].version", "missing")],
        id="missing-version",
    ),
    pytest.param(
        """
        name: stable
        descripton: typo
        releases:
          - {version: 1.0.0, chart: {path: x}}
        """,
        [(2, "descripton", "unknown key 'descripton' (did you mean 'description'?)")],
        id="unknown-top-level-key",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: 1.0.0
            chart: {path: x}
            rollot: 10
        """,
        [(5, "releases[0].rollot", "unknown key 'rollot' (did you mean 'rollout'?)")],
        id="unknown-release-key",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: 1.0.0
            chart: {path: x, branch: main}
        """,
        [(4, "releases[0].chart.branch", "unknown key 'branch'")],
        id="unknown-chart-key",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: 1.0.0
            chart: {path: x}
            rollout: ten
        """,
        [(5, "releases[0].rollout", 'must be an integer from 0 to 100, not a string ("ten")')],
        id="rollout-not-a-number",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: 1.0.0
            chart: {path: x}
            rollout: true
        """,
        [(5, "releases[0].rollout", "not a boolean")],
        id="rollout-boolean",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: 1.0.0
            chart: {path: x}
            rollout: 12.5
        """,
        [(5, "releases[0].rollout", "not a number (12.5)")],
        id="rollout-fraction",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: 1.0.0
            chart: {path: x}
            rollout: 101
        """,
        [(5, "releases[0].rollout", "must be from 0 to 100 (a percentage), not 101")],
        id="rollout-over-100",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: 1.0.0
            chart: {path: x}
            rollout: -1
        """,
        [(5, "releases[0].rollout", "not -1")],
        id="rollout-negative",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: 1.0.0
            chart: {path: x}
            required: "yes"
        """,
        [(5, "releases[0].required", 'must be true or false, not a string ("yes")')],
        id="required-string",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: 1.0.0
            chart: {path: x}
            notes: 42
        """,
        [(5, "releases[0].notes", "must be a string")],
        id="notes-number",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: 1.0.0
            chart: {version: 1.0.0}
        """,
        [(4, "releases[0].chart", "neither a url (Helm repository or oci://) nor a path")],
        id="chart-without-url-or-path",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: 1.0.0
        """,
        [(3, "releases[0].chart", "neither a url")],
        id="no-chart-anywhere",
    ),
    pytest.param(
        """
        name: stable
        chart: {path: ./chart}
        releases:
          - version: 1.0.0
            chart: {url: "oci://registry.example.com/server"}
        """,
        [(5, "releases[0].chart", "both a url and a path")],
        id="chart-with-url-and-path",
    ),
    pytest.param(
        """
        name: stable
        chart: {url: https://charts.example.com}
        releases:
          - version: 1.0.0
            chart: {version: 1.0.0}
        """,
        [(5, "releases[0].chart.name", "a Helm repository chart needs a name")],
        id="http-chart-without-name",
    ),
    pytest.param(
        """
        name: stable
        chart: {url: https://charts.example.com, name: server}
        releases:
          - version: 1.0.0
        """,
        [(4, "releases[0].chart.version", "a Helm repository chart needs a version")],
        id="http-chart-without-version",
    ),
    pytest.param(
        """
        name: stable
        chart: {url: ftp://charts.example.com, name: server, version: 1.0.0}
        releases:
          - version: 1.0.0
        """,
        [(2, "chart.url", "neither an http(s) Helm repository URL nor oci://")],
        id="chart-url-scheme",
    ),
    pytest.param(
        """
        name: stable
        chart: {path: ""}
        releases:
          - version: 1.0.0
        """,
        [(2, "chart.path", "must be a non-empty string")],
        id="chart-empty-path",
    ),
    pytest.param(
        """
        name: stable
        chart: {path: null}
        releases:
          - version: 1.0.0
        """,
        [(2, "chart.path", "must be a non-empty string without surrounding spaces")],
        id="channel-chart-null",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: 1.0.0
            chart: path
        """,
        [(4, "releases[0].chart", "must be a mapping, not a string")],
        id="chart-not-a-mapping",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: 1.0.0
            chart: {path: x}
            values: [a, b]
        """,
        [(5, "releases[0].values", "must be a mapping, not a list")],
        id="values-not-a-mapping",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: 1.0.0
            chart: {path: x}
            releasedAt: yesterday
        """,
        [(5, "releases[0].releasedAt", "must be a timestamp like 2026-10-01T12:00:00Z")],
        id="released-at-not-a-time",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: 1.0.0
            chart: {path: x}
            releasedAt: "2026-10-01T12:00:00"
        """,
        [(5, "releases[0].releasedAt", "RFC 3339")],
        id="released-at-string-without-offset",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: 1.0.0
            chart: {path: x}
            releasedAt: 2026-13-45
        """,
        [(5, "releases[0].releasedAt", "'2026-13-45' is not a valid timestamp")],
        id="released-at-impossible-date",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: 1.0.0
            chart: {path: x
        """,
        [(5, "<document>", "invalid YAML")],
        id="yaml-syntax-error",
    ),
    pytest.param(
        """
        name: stable
          description: bad indent
        releases: []
        """,
        [(2, "<document>", "invalid YAML: mapping values are not allowed")],
        id="yaml-bad-indentation",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - {version: 1.0.0, chart: {path: x}}
        ---
        name: beta
        """,
        [(4, "<document>", "expected a single document")],
        id="two-documents",
    ),
    pytest.param(
        """
        name: beta
        releases:
          - {version: 1.0.0, chart: {path: x}}
        """,
        [(1, "name", "'beta' does not match the file name 'stable'")],
        id="name-not-the-file-stem",
    ),
    pytest.param(
        """
        name: Stable
        releases:
          - {version: 1.0.0, chart: {path: x}}
        """,
        [(1, "name", "'Stable' is not a channel name")],
        id="name-invalid",
    ),
    pytest.param(
        """
        description: no name
        releases:
          - {version: 1.0.0, chart: {path: x}}
        """,
        [(1, "name", "missing")],
        id="name-missing",
    ),
    pytest.param(
        """
        name: stable
        releases: []
        """,
        [(2, "releases", "a channel needs at least one release")],
        id="empty-releases",
    ),
    pytest.param(
        """
        name: stable
        """,
        [(1, "releases", "missing")],
        id="releases-missing",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - 1.0.0
        """,
        [(3, "releases[0]", "a release must be a mapping, not a string")],
        id="release-not-a-mapping",
    ),
    pytest.param(
        """
        name: stable
        releases:
          - version: 1.0.0
            chart: {path: x}
            rollout: 10
            rollout: 20
        """,
        [(6, "releases[0].rollout", "duplicate key 'rollout' (first at line 5)")],
        id="duplicate-mapping-key",
    ),
    pytest.param(
        """
        - name: stable
        """,
        [(1, "<document>", "a channel must be a mapping, not a list")],
        id="document-not-a-mapping",
    ),
    pytest.param(
        """
        # only a comment
        """,
        [(None, "<document>", "the document is empty")],
        id="empty-document",
    ),
    pytest.param(
        """
        name: stable
        values: {on: true}
        releases:
          - {version: 1.0.0, chart: {path: x}}
        """,
        [(2, "values", "key 'on' is read as a boolean; quote it")],
        id="key-read-as-boolean",
    ),
    pytest.param(
        """
        name: stable
        values: {[a]: 1}
        releases:
          - {version: 1.0.0, chart: {path: x}}
        """,
        [(2, "values", "a mapping key must be a string")],
        id="key-is-a-list",
    ),
    pytest.param(
        """
        name: stable
        values:
          base: &base {a: 1}
          copy: {<<: *base}
        releases:
          - {version: 1.0.0, chart: {path: x}}
        """,
        [(4, "values.copy", "merge keys (<<) are not supported")],
        id="merge-key",
    ),
    pytest.param(
        """
        name: stable
        values: {blob: !!binary aGVsbG8=}
        releases:
          - {version: 1.0.0, chart: {path: x}}
        """,
        [(2, "values.blob", "unsupported tag tag:yaml.org,2002:binary")],
        id="binary-scalar",
    ),
    pytest.param(
        """
        name: stable
        values: {run: !!python/object/apply:os.system [echo pwned]}
        releases:
          - {version: 1.0.0, chart: {path: x}}
        """,
        [(2, "values.run", "unsupported tag tag:yaml.org,2002:python/object/apply:os.system")],
        id="python-object-tag",
    ),
    pytest.param(
        """
        name: stable
        values: {tags: !!set {a, b}}
        releases:
          - {version: 1.0.0, chart: {path: x}}
        """,
        [(2, "values.tags", "only plain mappings are allowed")],
        id="set-tag",
    ),
    pytest.param(
        """
        name: stable
        values: {ratio: .nan, "app.kubernetes.io/name": x, size: .inf}
        releases:
          - {version: 1.0.0, chart: {path: x}}
        """,
        [(2, "values.ratio", "cannot be represented in JSON"), (2, "values.size", "JSON")],
        id="non-finite-numbers",
    ),
    pytest.param(
        """
        name: stable
        values: {count: !!int twelve}
        releases:
          - {version: 1.0.0, chart: {path: x}}
        """,
        [(2, "values.count", "'twelve' is not a valid int")],
        id="bad-explicit-int",
    ),
    pytest.param(
        """
        name: stable
        values:
          "app.kubernetes.io/name": {x: 1, x: 2}
        releases:
          - {version: 1.0.0, chart: {path: x}}
        """,
        [(3, 'values["app.kubernetes.io/name"].x', "duplicate key 'x'")],
        id="odd-keys-are-quoted-in-field-paths",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_a_bad_channel_is_refused_with_line_and_field(
    text: str, expected: list[tuple[int | None, str, str]]
) -> None:
    problems = problems_of(doc(text))
    assert [(p.line, p.field) for p in problems] == [(line, field) for line, field, _ in expected]
    for problem, (_, _, message) in zip(problems, expected, strict=True):
        assert message in problem.message
        assert problem.file == "stable.yaml"


def test_every_problem_in_a_file_is_reported_in_file_order() -> None:
    problems = problems_of(
        doc("""
        name: stable
        extra: 1
        chart: {url: https://charts.example.com, name: server}
        releases:
          - version: 1.0.0
            chart: {version: 0.1.0}
            rollout: 101
          - version: nope
            required: "yes"
          - version: 1.0.0
            chart: {version: 0.1.0, path: x}
            rollout: 50
            rollout: 60
        """)
    )
    assert [(p.line, p.field) for p in problems] == [
        (2, "extra"),
        (7, "releases[0].rollout"),
        (8, "releases[1].version"),
        (8, "releases[1].chart.version"),
        (9, "releases[1].required"),
        (10, "releases[2].version"),
        (11, "releases[2].chart"),
        (13, "releases[2].rollout"),
    ]
    assert str(problems[0]) == "stable.yaml:2: extra: unknown key 'extra' (allowed: chart, " + (
        "description, halt, name, releases, values)"
    )


def test_an_invalid_channel_chart_is_reported_once_not_per_release() -> None:
    problems = problems_of(
        doc("""
        name: stable
        chart: {url: ftp://charts.example.com}
        releases:
          - {version: 1.0.0}
          - {version: 1.1.0}
        """)
    )
    assert [(p.line, p.field) for p in problems] == [(2, "chart.url")]


def test_the_error_carries_every_problem_for_the_api() -> None:
    with pytest.raises(ChannelValidationError) as caught:
        parse("name: stable\nreleases: []\nextra: 1\n")
    error = caught.value
    assert error.status == 422
    assert error.code == "invalid_channel"
    assert error.to_dict()["error"]["problems"] == [
        {
            "file": "stable.yaml",
            "line": 2,
            "field": "releases",
            "message": "a channel needs at least one release",
        },
        {
            "file": "stable.yaml",
            "line": 3,
            "field": "extra",
            "message": "unknown key 'extra'"
            " (allowed: chart, description, halt, name, releases, values)",
        },
    ]


# --- caps: size, depth, nodes (YAML bombs)

BILLION_LAUGHS = """\
name: stable
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
releases: *i
"""


def test_a_billion_laughs_document_is_refused_quickly() -> None:
    started = time.perf_counter()
    problems = problems_of(BILLION_LAUGHS)
    assert time.perf_counter() - started < 2
    assert len(problems) == 1
    assert problems[0].field.startswith("f[")  # stopped in the sixth level, not the ninth
    assert f"more than {MAX_NODES} nodes once aliases are expanded" in problems[0].message


def test_a_recursive_alias_is_refused_by_the_depth_cap() -> None:
    problems = problems_of("name: stable\nreleases: &r [*r]\n")
    assert len(problems) == 1
    assert problems[0].line == 2
    assert f"nested deeper than {MAX_DEPTH} levels" in problems[0].message


def test_deep_block_nesting_is_refused_with_its_line() -> None:
    keys = [f"{'  ' * (i + 1)}k{i}:" for i in range(MAX_DEPTH + 5)]
    problems = problems_of("\n".join(["name: stable", "values:", *keys]) + " 1\n")
    # The root mapping is level 1; the mapping at level d starts on line d + 1 (under `values:`).
    assert [(p.line, p.field) for p in problems] == [(MAX_DEPTH + 2, "<document>")]
    assert "nested deeper than 32 levels" in problems[0].message


def nested_lists(levels: int) -> str:
    return "[" * levels + "1" + "]" * levels


def test_nesting_at_the_cap_is_accepted() -> None:
    # Root mapping and `values` are two levels; the lists fill the rest.
    text = "name: stable\nvalues: {a: %s}\nreleases: [{version: 1.0.0, chart: {path: x}}]\n"
    assert parse(text % nested_lists(MAX_DEPTH - 2))
    problems = problems_of(text % nested_lists(MAX_DEPTH - 1))
    assert [(p.line, p.field) for p in problems] == [(2, "<document>")]


@pytest.mark.parametrize(
    ("nesting", "line"),
    [
        ("values: " + "[" * 200_000, 2),
        ("values: " + "{a: " * 200_000, 2),
        ("values:\n" + "- " * 200_000, 3),
    ],
    ids=["flow-lists", "flow-mappings", "block-lists"],
)
def test_very_deep_nesting_is_refused_fast_without_crashing(nesting: str, line: int) -> None:
    # libyaml's composer would overflow the C stack on this; the event pre-scan stops it first.
    started = time.perf_counter()
    problems = problems_of("name: stable\n" + nesting + "1\n")
    assert time.perf_counter() - started < 2
    assert [(p.line, p.field) for p in problems] == [(line, "<document>")]
    assert "nested deeper than 32 levels" in problems[0].message


def test_too_many_nodes_are_refused_even_without_aliases() -> None:
    text = "name: stable\nvalues: {xs: [" + ",".join(["1"] * MAX_NODES) + "]}\n"
    problems = problems_of(text)
    assert [(p.line, p.field) for p in problems] == [(2, "<document>")]
    assert f"more than {MAX_NODES} nodes" in problems[0].message


@pytest.mark.parametrize("as_bytes", [False, True])
def test_oversize_text_is_refused_before_parsing(as_bytes: bool) -> None:
    text = GOOD + "#" * (MAX_TEXT_BYTES - len(GOOD)) + "\n"
    problems = problems_of(text.encode() if as_bytes else text)
    assert [(p.line, p.field) for p in problems] == [(None, "<document>")]
    assert "1 MiB" in problems[0].message


# Integers Python cannot write out as text (more than 4300 digits): refused with their line, in
# every notation YAML reads as an integer, instead of failing later when the channel is written.
HUGE_INTEGERS = {
    "hex": "0x" + "f" * 4000,
    "octal": "0" + "7" * 5000,
    "binary": "0b" + "1" * 15_000,
    "decimal": "9" * 5000,
    "sexagesimal": "1" + ":59" * 2500,
}


@pytest.mark.parametrize("written", HUGE_INTEGERS.values(), ids=HUGE_INTEGERS.keys())
def test_an_integer_too_long_to_write_out_is_refused_with_its_line(written: str) -> None:
    problems = problems_of(GOOD.replace("replicas: 2", f"replicas: {written}"))
    assert [(p.line, p.field) for p in problems] == [(4, "values.app.replicas")]
    assert f"more than {MAX_INTEGER_DIGITS} digits" in problems[0].message


def test_an_integer_of_the_longest_allowed_length_is_accepted() -> None:
    longest = int("9" * MAX_INTEGER_DIGITS)
    channel = parse(GOOD.replace("replicas: 2", f"replicas: {hex(longest)}"))
    assert channel.values["app"]["replicas"] == longest
    assert json.loads(json.dumps(channel.document))["values"]["app"]["replicas"] == longest


def test_a_document_with_an_integer_too_long_is_refused() -> None:
    document = {"name": "stable", "chart": {"path": "x"}, "releases": [{"version": "1.0.0"}]}
    with pytest.raises(ChannelValidationError) as caught:
        channel_from_document({**document, "values": {"n": 16**4000}})
    assert [(p.field, p.line) for p in caught.value.problems] == [("values.n", None)]


def test_text_at_the_size_limit_is_accepted() -> None:
    assert parse(GOOD + "#" * (MAX_TEXT_BYTES - len(GOOD) - 1) + "\n")


def test_multibyte_text_is_measured_in_utf8_bytes() -> None:
    text = GOOD + "# " + "é" * (MAX_TEXT_BYTES // 2) + "\n"
    assert "1 MiB" in problems_of(text)[0].message


def test_invalid_utf8_is_refused_with_its_line() -> None:
    problems = problems_of(GOOD.encode() + b"notes: \xff\xfe\n")
    assert [(p.line, p.field) for p in problems] == [(15, "<document>")]
    assert "not valid UTF-8" in problems[0].message


def test_control_characters_are_refused_with_their_line() -> None:
    problems = problems_of(GOOD + "notes: a\x00b\n")
    assert [(p.line, p.field) for p in problems] == [(15, "<document>")]


def test_a_lone_surrogate_in_text_is_refused() -> None:
    problems = problems_of(GOOD + "# \ud800\n")
    assert [(p.line, p.field) for p in problems] == [(15, "<document>")]


# --- JSON documents (PUT bodies, stored documents)


def test_a_json_document_goes_through_the_same_rules_without_lines() -> None:
    document = {
        "name": "stable",
        "extra": True,
        "releases": [{"version": "1.0.0", "rollout": 101, "chart": {"path": "x"}}],
    }
    with pytest.raises(ChannelValidationError) as caught:
        channel_from_document(document, filename="PUT stable", expected_name="stable")
    assert [str(p) for p in caught.value.problems] == [
        "PUT stable:?: extra: unknown key 'extra' (allowed: chart, description, halt, name,"
        " releases, values)",
        "PUT stable:?: releases[0].rollout: must be from 0 to 100 (a percentage), not 101",
    ]


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({1: "x"}, "values", "key 1 is not a string"),
        ({"x": math.nan}, "values.x", "cannot be represented in JSON"),
        ({"x": {1, 2}}, "values.x", "a value of type set is not allowed"),
        ({"x": b"bytes"}, "values.x", "a value of type bytes is not allowed"),
    ],
)
def test_json_documents_must_hold_json(values: dict[Any, Any], field: str, message: str) -> None:
    document = {
        "name": "stable",
        "values": values,
        "releases": [{"version": "1.0.0", "chart": {"path": "x"}}],
    }
    with pytest.raises(ChannelValidationError) as caught:
        channel_from_document(document)
    assert [(p.line, p.field) for p in caught.value.problems] == [(None, field)]
    assert message in caught.value.problems[0].message


def test_a_self_referencing_document_is_refused_by_the_depth_cap() -> None:
    values: dict[str, Any] = {}
    values["self"] = values
    document = {"name": "stable", "values": values, "releases": [{"version": "1.0.0"}]}
    with pytest.raises(ChannelValidationError) as caught:
        channel_from_document(document)
    assert "nested deeper than 32 levels" in caught.value.problems[0].message


def test_a_json_document_may_hold_python_dates() -> None:
    channel = channel_from_document(yaml.safe_load(GOOD))
    assert channel == parse(GOOD)


# --- files and directories


def test_a_file_must_be_named_after_its_channel(tmp_path: Path) -> None:
    (tmp_path / "edge.yaml").write_text(GOOD)
    with pytest.raises(ChannelValidationError) as caught:
        load_channel_file(tmp_path / "edge.yaml")
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.field) == (str(tmp_path / "edge.yaml"), 1, "name")


def test_an_unreadable_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(ChannelValidationError) as caught:
        load_channel_file(tmp_path / "missing.yaml")
    assert "cannot read the file" in caught.value.problems[0].message


def test_an_oversize_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "stable.yaml"
    path.write_text(GOOD + "#" * (3 * MAX_TEXT_BYTES) + "\n")
    with pytest.raises(ChannelValidationError) as caught:
        load_channel_file(path)
    assert "1 MiB" in caught.value.problems[0].message


def test_directories_load_yaml_files_sorted_and_skip_others(tmp_path: Path) -> None:
    (tmp_path / "stable.yaml").write_text(GOOD)
    (tmp_path / "beta.yml").write_text(GOOD.replace("name: stable", "name: beta"))
    (tmp_path / "README.md").write_text("not a channel")
    (tmp_path / ".draft.yaml").write_text("not: [valid")
    assert [c.name for c in load_channel_paths([tmp_path])] == ["beta", "stable"]


def test_a_file_given_twice_is_loaded_once(tmp_path: Path) -> None:
    (tmp_path / "stable.yaml").write_text(GOOD)
    assert len(load_channel_paths([tmp_path, tmp_path / "stable.yaml"])) == 1


def test_loading_paths_is_all_or_nothing_and_reports_every_file(tmp_path: Path) -> None:
    (tmp_path / "stable.yaml").write_text(GOOD)
    (tmp_path / "beta.yaml").write_text("name: beta\nreleases: []\n")
    (tmp_path / "edge.yaml").write_text("name: edge\nreleases: [\n")
    with pytest.raises(ChannelValidationError) as caught:
        load_channel_paths([tmp_path, tmp_path / "nope.yaml"])
    assert [(Path(p.file).name, p.line, p.field) for p in caught.value.problems] == [
        ("nope.yaml", None, "<document>"),
        ("beta.yaml", 2, "releases"),
        ("edge.yaml", 3, "<document>"),
    ]


def test_two_files_defining_one_channel_are_refused(tmp_path: Path) -> None:
    (tmp_path / "stable.yaml").write_text(GOOD)
    (tmp_path / "stable.yml").write_text(GOOD)
    with pytest.raises(ChannelValidationError) as caught:
        load_channel_paths([tmp_path])
    [problem] = caught.value.problems
    assert (Path(problem.file).name, problem.field) == ("stable.yml", "name")
    assert "also defined in" in problem.message


def test_a_directory_without_channel_files_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(ChannelValidationError) as caught:
        load_channel_paths([tmp_path])
    assert "no channel files" in caught.value.problems[0].message


# --- the JSON Schema and the sample channels


def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_schema_property_is_described() -> None:
    def walk(node: Any, where: str) -> list[str]:
        missing = []
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if "description" not in sub:
                    missing.append(f"{where}.{name}")
            for key, sub in node.items():
                missing += walk(sub, f"{where}.{key}")
        return missing

    assert walk(schema(), "schema") == []


def test_the_schema_lists_the_same_keys_as_the_parser() -> None:
    from deployd.channels.model import CHANNEL_KEYS, CHART_KEYS, RELEASE_KEYS

    defs = schema()["$defs"]
    assert set(schema()["properties"]) == CHANNEL_KEYS
    assert set(defs["release"]["properties"]) == RELEASE_KEYS
    assert set(defs["channelChart"]["properties"]) == CHART_KEYS
    assert set(defs["releaseChart"]["properties"]) == CHART_KEYS


def test_there_are_sample_channels() -> None:
    assert [path.name for path in SAMPLES] == ["beta.yaml", "stable.yaml"]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_channels_pass_the_parser_and_the_schema(path: Path) -> None:
    channel = load_channel_file(path)
    jsonschema.validate(channel.document, schema(), cls=jsonschema.Draft202012Validator)
    assert any(r.required for r in channel.releases)
    assert any(r.rollout < 100 for r in channel.releases)
    assert len(channel.releases) >= 3


def test_the_stable_sample_stages_its_newest_release_behind_a_required_one() -> None:
    stable = load_channel_file(REPO / "channels" / "stable.yaml")
    assert stable.newest.rollout < 100
    assert any(r.required and r.rollout == 100 for r in stable.releases[:-1])


def test_the_beta_sample_carries_prereleases() -> None:
    beta = load_channel_file(REPO / "channels" / "beta.yaml")
    assert any(r.semver.prerelease for r in beta.releases)


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},
        {"releases": []},
        {"releases": [{"version": "1.0.0", "rollout": 101}]},
        {"releases": [{"version": "1.0.0", "rollout": "ten"}]},
        {"releases": [{"version": "1.0.0", "required": "yes"}]},
        {"releases": [{"chart": {"path": "x"}}]},
        {"releases": [{"version": "1.0.0", "chart": {"branch": "main"}}]},
        {"name": "Stable"},
        {"chart": {"url": "https://user@/charts", "name": "server", "version": "1.0.0"}},
        {"chart": {"url": "oci://ghcr.io", "version": "1.0.0"}},
        {"chart": {"url": "oci://ghcr.io/wandb/charts", "version": "latest"}},
    ],
)
def test_the_schema_refuses_what_the_parser_refuses(change: dict[str, Any]) -> None:
    document = {
        "name": "stable",
        "chart": {"path": "x"},
        "releases": [{"version": "1.0.0"}],
    } | change
    with pytest.raises(ChannelValidationError):
        channel_from_document(document)
    assert not jsonschema.Draft202012Validator(schema()).is_valid(document)


# --- properties

YAMLISH = st.text(alphabet="-:[]{}&*!|>'\"#%@`,? \n\tab01.\\~", max_size=200)


@settings(deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300), YAMLISH))
def test_the_parser_only_ever_raises_channel_validation_errors(text: str | bytes) -> None:
    try:
        parse_channel_text(text, filename="fuzz.yaml")
    except ChannelValidationError as e:
        assert e.problems
        assert all(p.line is None or p.line >= 1 for p in e.problems)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(deadline=None)
@given(
    st.dictionaries(st.sampled_from(sorted(["name", "chart", "values", "releases", "x"])), JSONISH)
)
def test_random_documents_only_ever_raise_channel_validation_errors(
    document: dict[str, Any],
) -> None:
    try:
        channel_from_document(document)
    except ChannelValidationError as e:
        assert e.problems


FINITE_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


def release_documents() -> st.SearchStrategy[dict[str, Any]]:
    version = st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(0, 20)).map(
        lambda t: "{}.{}.{}".format(*t)
    )
    return st.fixed_dictionaries(
        {"version": version},
        optional={
            "chart": st.fixed_dictionaries({"version": st.sampled_from(["0.1.0", "1.2.3"])}),
            "values": st.dictionaries(
                st.text("abc", min_size=1, max_size=3), FINITE_JSON, max_size=3
            ),
            "releasedAt": st.datetimes(min_value=datetime(1970, 1, 1)).map(
                lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
            ),
            "notes": st.text(max_size=20),
            "required": st.booleans(),
            "rollout": st.integers(0, 100),
        },
    )


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(release_documents(), min_size=1, max_size=5, unique_by=lambda r: r["version"]))
def test_valid_channels_round_trip_through_their_document_and_yaml(
    releases: list[dict[str, Any]],
) -> None:
    document = {
        "name": "stable",
        "chart": {"url": "https://charts.example.com", "name": "server", "version": "0.0.1"},
        "releases": releases,
    }
    channel = channel_from_document(document)
    assert channel.document == document
    assert channel_from_document(channel.document) == channel
    assert parse(yaml.safe_dump(document)) == channel
    assert [r.semver for r in channel.releases] == sorted(
        Version.parse(r["version"]) for r in releases
    )


@pytest.mark.parametrize(
    ("halt", "message"),
    [
        ("{failures: 0}", "halt.failures: must be 1 or more, not 0"),
        ("{failureRate: 1.5, minReports: 10}", "halt.failureRate: must be above 0 and at most 1"),
        ("{failureRate: 0.2}", "halt: failureRate needs minReports"),
        ("{failures: 3, failureRate: 0.2, minReports: 5}", "halt: give either failures"),
        ("{}", "halt: needs failures or failureRate"),
        ("{failurs: 3}", "halt.failurs: unknown key 'failurs' (did you mean 'failures'?)"),
        ("3", "halt: must be a mapping like"),
    ],
)
def test_halt_policies_are_checked_with_their_line(halt: str, message: str) -> None:
    problems = problems_of(
        "name: stable\nchart: {url: https://charts.example.com, name: server}\n"
        f"releases:\n  - version: 1.0.0\n    chart: {{version: 0.1.0}}\n    halt: {halt}\n"
    )
    assert len(problems) == 1
    assert problems[0].line == 6
    assert f"{problems[0].field}: {problems[0].message}".startswith(
        message.replace("halt", "releases[0].halt", 1)
    )


def test_a_release_halt_policy_replaces_the_channels() -> None:
    channel = parse(
        "name: stable\nchart: {url: https://charts.example.com, name: server}\n"
        "halt: {failureRate: 0.2, minReports: 10}\n"
        "releases:\n  - version: 1.0.0\n    chart: {version: 0.1.0}\n"
        "  - version: 1.1.0\n    chart: {version: 0.1.1}\n    halt: {failures: 3}\n"
    )
    first, second = channel.releases
    assert first.halt is not None and first.halt.to_dict() == {"failureRate": 0.2, "minReports": 10}
    assert second.halt is not None and second.halt.to_dict() == {"failures": 3}
    assert not first.halt.crossed(reports=9, failures=9)
    assert first.halt.crossed(reports=10, failures=2)
    assert not first.halt.crossed(reports=10, failures=1)
