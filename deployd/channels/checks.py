"""Checking a channel: values and lines -> Channel, every problem collected with line and field."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from deployd.channels import charts
from deployd.channels.model import (
    CHANNEL_KEYS,
    CHART_KEYS,
    HALT_KEYS,
    NAME_PATTERN,
    RELEASE_KEYS,
    Channel,
    HaltPolicy,
    Release,
    _Path,
    field_path,
)
from deployd.channels.reading import _INVALID, _kind, _ObjectWalker, _Reader
from deployd.errors import ChannelValidationError, Problem
from deployd.semver import Version
from deployd.values import deep_merge

# What each chart value must be besides a non-empty string (deployd/channels/charts.py).
_CHART_VALUE_CHECKS: dict[str, Callable[[str], str | None]] = {
    "url": charts.url_problem,
    "version": charts.version_problem,
}

_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


def parse_channel_text(
    text: str | bytes, *, filename: str, expected_name: str | None = None
) -> Channel:
    """Parse and validate one channel written in YAML (UTF-8 when given bytes).

    Raises ChannelValidationError listing every problem, each with its line and field.
    `expected_name`, when given, is the only `name:` accepted (a file's stem).
    """
    reader = _Reader(filename)
    root, lines = reader.read(text)
    return _compile(
        root, lines, filename=filename, expected_name=expected_name, found=reader.problems
    )


def channel_from_document(
    document: Mapping[str, Any], *, filename: str = "<document>", expected_name: str | None = None
) -> Channel:
    """Validate a channel given as JSON-like data (a PUT body, a stored document).

    Same rules and caps as YAML text; problems carry no line. ``channel_from_document(c.document)``
    gives back a channel equal to `c`.
    """
    walker = _ObjectWalker(filename)
    root = walker.walk(document)
    return _compile(root, {}, filename=filename, expected_name=expected_name, found=walker.problems)


def _described(value: Any) -> str:
    """The kind of `value`, with the value itself when it is a short scalar."""
    if isinstance(value, str | int | float):
        shown = json.dumps(value, ensure_ascii=False)
        if len(shown) <= 40:
            return f"{_kind(value)} ({shown})"
    return _kind(value)


class _Checker:
    def __init__(self, filename: str, lines: Mapping[_Path, int], found: list[Problem]) -> None:
        self.filename = filename
        self.lines = lines
        self.problems = list(found)

    def problem(self, path: _Path, message: str) -> None:
        self.problems.append(Problem(self.filename, self.line(path), field_path(path), message))

    def line(self, path: _Path) -> int | None:
        """The line of `path`, or of its nearest written ancestor when it is missing."""
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)

    def keys(self, mapping: dict[str, Any], path: _Path, allowed: frozenset[str]) -> None:
        for key in mapping:
            if key not in allowed:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                hint = (
                    f"did you mean {close[0]!r}?"
                    if close
                    else "allowed: " + ", ".join(sorted(allowed))
                )
                self.problem((*path, key), f"unknown key {key!r} ({hint})")

    def typed(
        self, mapping: dict[str, Any], path: _Path, key: str, types: tuple[type, ...], kind: str
    ) -> Any:
        """The value at `key` if it has one of `types` (bool never counts as int); else None."""
        value = mapping.get(key)
        if value is None and key not in mapping or value is _INVALID:
            return None
        if isinstance(value, types) and not (isinstance(value, bool) and bool not in types):
            return value
        self.problem((*path, key), f"must be {kind}, not {_described(value)}")
        return None

    def required(self, mapping: dict[str, Any], path: _Path, key: str) -> bool:
        if key in mapping:
            return True
        self.problem((*path, key), "missing (required)")
        return False

    def chart(self, chart: dict[str, Any], path: _Path, *, nulls: bool) -> None:
        """Check the keys and types of a chart as written (a release's may null a key)."""
        self.keys(chart, path, CHART_KEYS)
        for key in sorted(CHART_KEYS & chart.keys()):
            value = chart[key]
            if value is _INVALID or (value is None and nulls):
                continue
            if not isinstance(value, str) or not value.strip() or value != value.strip():
                how = "a non-empty string without surrounding spaces"
                self.problem((*path, key), f"must be {how}" + (" or null" if nulls else ""))
                continue
            check = _CHART_VALUE_CHECKS.get(key)
            problem = check(value) if check is not None else None
            if problem is not None:
                self.problem((*path, key), problem)

    def effective_chart(self, chart: dict[str, Any], path: _Path) -> None:
        """Check that the merged chart is one the operator can install."""
        url, chart_path = chart.get("url"), chart.get("path")
        if url is not None and chart_path is not None:
            self.problem(path, "the chart has both a url and a path; give one")
        elif url is None and chart_path is None:
            self.problem(path, "the chart has neither a url (Helm repository or oci://) nor a path")
        elif url is not None:
            for error in charts.installable_problems(chart):
                self.problem((*path, error.key) if error.key else path, error.message)


def _timestamp(value: Any) -> str | None:
    """Normalize a YAML timestamp or an RFC 3339 string to ``YYYY-MM-DDTHH:MM:SSZ``; else None."""
    if isinstance(value, str):
        if not _RFC3339.fullmatch(value):
            return None
        try:
            value = datetime.fromisoformat(value.upper())
        except ValueError:
            return None
    if isinstance(value, datetime):
        # YAML reads a timestamp without an offset as UTC.
        moment = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00Z"
    return None


def _json_value(value: Any) -> Any:
    """A copy with dates and times written as ISO 8601 strings (what JSON can carry)."""
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _compile(
    root: Any,
    lines: Mapping[_Path, int],
    *,
    filename: str,
    expected_name: str | None,
    found: list[Problem],
) -> Channel:
    check = _Checker(filename, lines, found)
    channel = None if root is _INVALID else _check_channel(check, root, expected_name)
    if check.problems:
        # File order; problems without a line (caps, JSON input) keep the order they were found.
        raise ChannelValidationError(sorted(check.problems, key=lambda p: p.line or 0))
    assert channel is not None  # every path that yields no channel records a problem
    return channel


def _check_channel(check: _Checker, root: Any, expected_name: str | None) -> Channel | None:
    if not isinstance(root, dict):
        check.problem((), f"a channel must be a mapping, not {_kind(root)}")
        return None
    check.keys(root, (), CHANNEL_KEYS)

    name = None
    if check.required(root, (), "name"):
        name = check.typed(root, (), "name", (str,), "a string")
    if name is not None:
        if not NAME_PATTERN.fullmatch(name):
            check.problem(
                ("name",),
                f"{name!r} is not a channel name: lowercase letters, digits and '-', "
                "starting with a letter or digit, at most 63 characters",
            )
        elif expected_name is not None and name != expected_name:
            check.problem(("name",), f"{name!r} does not match the file name {expected_name!r}")
    description = check.typed(root, (), "description", (str,), "a string") or ""
    problems_before_chart = len(check.problems)
    chart = check.typed(root, (), "chart", (dict,), "a mapping") or {}
    check.chart(chart, ("chart",), nulls=False)
    # A broken channel chart is reported once, not again as every release's effective chart.
    chart_ok = len(check.problems) == problems_before_chart
    values = check.typed(root, (), "values", (dict,), "a mapping") or {}

    written = None
    if check.required(root, (), "releases"):
        written = check.typed(root, (), "releases", (list,), "a list")
    if written is not None and not written:
        check.problem(("releases",), "a channel needs at least one release")

    halt = _check_halt(check, root, ())
    base = _ReleaseBase(_json_value(chart), _json_value(values), chart_ok, halt)
    document = _json_value(root)
    releases: list[Release] = []
    first_seen: dict[Version, int] = {}
    for index, item in enumerate(written or ()):
        semver, release = _check_release(check, item, index, document["releases"][index], base)
        if semver is not None and semver in first_seen:
            other: _Path = ("releases", first_seen[semver], "version")
            where = f" (line {check.line(other)})" if check.line(other) else ""
            check.problem(
                ("releases", index, "version"),
                f"duplicate version: {field_path(other)}{where} is the same release",
            )
        elif semver is not None:
            first_seen[semver] = index
        if release is not None:
            releases.append(release)

    if check.problems or name is None:
        return None
    return Channel(
        name=name,
        description=description,
        chart=base.chart,
        values=base.values,
        releases=tuple(sorted(releases, key=lambda r: r.semver)),
        document=document,
    )


@dataclass(frozen=True)
class _ReleaseBase:
    """What every release of a channel starts from."""

    chart: dict[str, Any]
    values: dict[str, Any]
    chart_ok: bool
    halt: HaltPolicy | None = None


def _check_release(
    check: _Checker, item: Any, index: int, document: Any, base: _ReleaseBase
) -> tuple[Version | None, Release | None]:
    """Check one release; its semver (for the duplicate check) and the release if it is valid."""
    path: _Path = ("releases", index)
    if item is _INVALID:
        return None, None
    if not isinstance(item, dict):
        check.problem(path, f"a release must be a mapping, not {_kind(item)}")
        return None, None
    problems_before = len(check.problems)
    check.keys(item, path, RELEASE_KEYS)

    version = semver = None
    if check.required(item, path, "version"):
        version = check.typed(item, path, "version", (str,), "a string (quote numbers like 1.4)")
    if version is not None:
        try:
            semver = Version.parse(version)
        except ValueError:
            check.problem((*path, "version"), f"{version!r} is not a semantic version like 1.4.0")

    problems_before_chart = len(check.problems)
    chart = check.typed(item, path, "chart", (dict,), "a mapping")
    if chart is not None:
        check.chart(chart, (*path, "chart"), nulls=True)
    effective_chart = deep_merge(base.chart, _json_value(chart or {}))
    if base.chart_ok and len(check.problems) == problems_before_chart:
        check.effective_chart(effective_chart, (*path, "chart"))
    values = check.typed(item, path, "values", (dict,), "a mapping")

    released_at = None
    if "releasedAt" in item:
        released_at = _timestamp(item["releasedAt"])
        if released_at is not None:
            document["releasedAt"] = released_at
        elif item["releasedAt"] is not _INVALID:
            check.problem(
                (*path, "releasedAt"),
                "must be a timestamp like 2026-10-01T12:00:00Z (RFC 3339), "
                f"not {_described(item['releasedAt'])}",
            )
    notes = check.typed(item, path, "notes", (str,), "a string") or ""
    required = check.typed(item, path, "required", (bool,), "true or false") or False
    rollout = check.typed(item, path, "rollout", (int,), "an integer from 0 to 100")
    if rollout is not None and not 0 <= rollout <= 100:
        check.problem((*path, "rollout"), f"must be from 0 to 100 (a percentage), not {rollout}")
    halt = _check_halt(check, item, path)

    if version is None or semver is None or len(check.problems) > problems_before:
        return semver, None
    return semver, Release(
        version=version,
        semver=semver,
        chart=effective_chart,
        values=deep_merge(base.values, _json_value(values or {})),
        released_at=released_at,
        notes=notes,
        required=required,
        rollout=100 if rollout is None else rollout,
        document=document,
        halt=halt or base.halt,
    )


_HALT_SHAPES = "{failures: N} or {failureRate: 0.2, minReports: 10}"


def _check_halt(check: _Checker, mapping: dict[str, Any], path: _Path) -> HaltPolicy | None:
    """The `halt:` policy of a channel or release, if written and valid (problems recorded)."""
    halt = check.typed(mapping, path, "halt", (dict,), f"a mapping like {_HALT_SHAPES}")
    if halt is None:
        return None
    where: _Path = (*path, "halt")
    problems_before = len(check.problems)
    check.keys(halt, where, HALT_KEYS)
    failures = check.typed(halt, where, "failures", (int,), "a positive integer")
    if failures is not None and failures < 1:
        check.problem((*where, "failures"), f"must be 1 or more, not {failures}")
    rate = check.typed(halt, where, "failureRate", (int, float), "a number from 0 to 1")
    if rate is not None and not 0 < rate <= 1:
        check.problem((*where, "failureRate"), f"must be above 0 and at most 1, not {rate}")
    min_reports = check.typed(halt, where, "minReports", (int,), "a positive integer")
    if min_reports is not None and min_reports < 1:
        check.problem((*where, "minReports"), f"must be 1 or more, not {min_reports}")
    if "failures" in halt and ("failureRate" in halt or "minReports" in halt):
        check.problem(
            where, f"give either failures or failureRate (with minReports): {_HALT_SHAPES}"
        )
    elif "failures" not in halt and "failureRate" not in halt and not set(halt) - HALT_KEYS:
        check.problem(where, f"needs failures or failureRate: {_HALT_SHAPES}")
    elif "failureRate" in halt and "minReports" not in halt:
        check.problem(where, "failureRate needs minReports (how many reports before it counts)")
    if len(check.problems) > problems_before:
        return None
    if failures is not None:
        return HaltPolicy(failures=failures)
    return HaltPolicy(failure_rate=float(rate), min_reports=min_reports or 1)
