"""Channel documents: read a channel's YAML (or JSON) safely, check all of it, compile its releases.

A channel is refused whole or accepted whole. Every problem found is reported at once, each with
its file, 1-based line and field path (``releases[2].chart.version``), so a release engineer can
fix a file in one pass. YAML is read with PyYAML's safe composer and turned into Python values here,
node by node, which is what gives every field its line; the text size, the nesting depth and the
number of nodes (counting every alias expansion, so YAML bombs stop early) are capped.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from os import PathLike
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from deployd.channels import charts
from deployd.errors import ChannelValidationError, Problem
from deployd.semver import Version
from deployd.values import deep_merge

MAX_TEXT_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_NODES = 100_000
# Python converts integers of more digits than this to text only with a ValueError (its
# int_max_str_digits default), and every channel is written out as JSON: longer ones are refused.
MAX_INTEGER_DIGITS = 4300
_INTEGER_BOUND = 10**MAX_INTEGER_DIGITS

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
CHANNEL_KEYS = frozenset({"name", "description", "chart", "values", "releases"})
RELEASE_KEYS = frozenset(
    {"version", "chart", "values", "releasedAt", "notes", "required", "rollout"}
)
CHART_KEYS = frozenset({"url", "name", "version", "path"})
# What each chart value must be besides a non-empty string (deployd/channels/charts.py).
_CHART_VALUE_CHECKS: dict[str, Callable[[str], str | None]] = {
    "url": charts.url_problem,
    "version": charts.version_problem,
}

# The field name used for problems that belong to the document as a whole (syntax, size, caps).
DOCUMENT_FIELD = "<document>"

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_YAML + t for t in ("str", "null", "bool", "int", "float", "timestamp")}
_MAP_TAG = _YAML + "map"
_SEQ_TAG = _YAML + "seq"
_MERGE_TAG = _YAML + "merge"
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")

_Path = tuple[str | int, ...]


class _Invalid:
    """Stands in for a value that was already reported, so later checks don't report it again."""

    def __repr__(self) -> str:
        return "<invalid>"


_INVALID = _Invalid()


@dataclass(frozen=True)
class Release:
    """One release of a channel, with the channel's chart and values already merged in."""

    version: str
    semver: Version
    chart: dict[str, Any]
    values: dict[str, Any]
    released_at: str | None
    notes: str
    required: bool
    rollout: int
    document: dict[str, Any]


@dataclass(frozen=True)
class Channel:
    """A validated channel: its releases in ascending semver order and the document it came from."""

    name: str
    description: str
    chart: dict[str, Any]
    values: dict[str, Any]
    releases: tuple[Release, ...]
    document: dict[str, Any]

    def release(self, version: str) -> Release | None:
        """The release written as `version`, else the one of equal semver precedence, else None."""
        for release in self.releases:
            if release.version == version:
                return release
        try:
            wanted = Version.parse(version)
        except ValueError:
            return None
        return next((r for r in self.releases if r.semver == wanted), None)

    @property
    def newest(self) -> Release:
        """The release with the highest semver precedence (a channel always has one)."""
        return self.releases[-1]


def field_path(path: Iterable[str | int]) -> str:
    """Render a path of keys and indexes as ``releases[2].chart.version`` (odd keys quoted)."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += "[" + json.dumps(part, ensure_ascii=False) + "]"
    return text or DOCUMENT_FIELD


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


def load_channel_file(path: str | PathLike[str]) -> Channel:
    """Read and validate one channel file; its `name:` must be the file's stem."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            # One byte over the cap is enough to refuse the file without reading all of it.
            data = handle.read(MAX_TEXT_BYTES + 1)
    except OSError as e:
        reason = e.strerror or str(e)
        raise ChannelValidationError(
            [Problem(str(path), None, DOCUMENT_FIELD, f"cannot read the file: {reason}")]
        ) from e
    return parse_channel_text(data, filename=str(path), expected_name=path.stem)


def load_channel_paths(paths: Iterable[str | PathLike[str]]) -> list[Channel]:
    """Load channel files and directories of them (``*.yaml``, ``*.yml``; dotfiles skipped).

    All or nothing: if any file has a problem, or two files define the same channel, raises
    ChannelValidationError with the problems of every file. Channels come back in the order
    their paths were given, directories sorted by file name.
    """
    problems: list[Problem] = []
    files: list[Path] = []
    seen_files: set[Path] = set()
    for given in paths:
        given = Path(given)
        if given.is_dir():
            found = sorted(
                p
                for p in given.iterdir()
                if p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p.is_file()
            )
            if not found:
                problems.append(
                    Problem(str(given), None, DOCUMENT_FIELD, "no channel files (*.yaml, *.yml)")
                )
        elif given.exists():
            found = [given]
        else:
            problems.append(Problem(str(given), None, DOCUMENT_FIELD, "no such file or directory"))
            found = []
        for file in found:
            if file.resolve() not in seen_files:
                seen_files.add(file.resolve())
                files.append(file)

    channels: list[Channel] = []
    defined_in: dict[str, Path] = {}
    for file in files:
        try:
            channel = load_channel_file(file)
        except ChannelValidationError as e:
            problems.extend(e.problems)
            continue
        if channel.name in defined_in:
            message = f"channel {channel.name!r} is also defined in {defined_in[channel.name]}"
            problems.append(Problem(str(file), None, "name", message))
            continue
        defined_in[channel.name] = file
        channels.append(channel)
    if problems:
        raise ChannelValidationError(problems)
    return channels


def channel_digest(document: Mapping[str, Any]) -> str:
    """sha256 hex of the document's canonical JSON (sorted keys, compact separators, UTF-8)."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# --- reading: text or objects -> plain values (dates kept as date/datetime) + line of each field


class _Unreadable(Exception):
    """The text is unreadable or over a cap; the problems so far are all that is reported."""


class _Builder:
    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.problems: list[Problem] = []
        self.nodes = 0

    def problem(self, line: int | None, path: _Path, message: str) -> None:
        self.problems.append(Problem(self.filename, line, field_path(path), message))

    def count_node(self, line: int | None, path: _Path) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.problem(
                line,
                path,
                f"more than {MAX_NODES} nodes once aliases are expanded; refusing the document",
            )
            raise _Unreadable

    def check_depth(self, depth: int, line: int | None, path: _Path) -> None:
        if depth > MAX_DEPTH:
            self.problem(
                line, path, f"nested deeper than {MAX_DEPTH} levels; refusing the document"
            )
            raise _Unreadable


class _Reader(_Builder):
    """YAML text -> values, through the safe composer and a node walk that records lines."""

    def __init__(self, filename: str) -> None:
        super().__init__(filename)
        self.lines: dict[_Path, int] = {}
        self.constructor = SafeConstructor()

    def read(self, text: str | bytes) -> tuple[Any, dict[_Path, int]]:
        try:
            text = self._checked_text(text)
            root = self._compose(text)
            if root is None:
                self.problem(None, (), "the document is empty")
                return _INVALID, self.lines
            return self._node(root, (), 1), self.lines
        except _Unreadable:
            return _INVALID, self.lines

    def _checked_text(self, text: str | bytes) -> str:
        if isinstance(text, str):
            try:
                size = len(text.encode("utf-8")) if len(text) <= MAX_TEXT_BYTES else len(text)
            except UnicodeEncodeError as e:
                line = text.count("\n", 0, e.start) + 1
                self.problem(line, (), "the text holds a character that is not valid in UTF-8")
                raise _Unreadable from e
        else:
            size = len(text)
        if size > MAX_TEXT_BYTES:
            self.problem(None, (), f"the document is over the {MAX_TEXT_BYTES}-byte limit (1 MiB)")
            raise _Unreadable
        if isinstance(text, bytes):
            try:
                return text.decode("utf-8")
            except UnicodeDecodeError as e:
                line = text.count(b"\n", 0, e.start) + 1
                self.problem(line, (), f"not valid UTF-8 (byte {e.start})")
                raise _Unreadable from e
        return text

    def _compose(self, text: str) -> yaml.Node | None:
        try:
            # Check depth and size on the event stream first: libyaml's composer recurses without
            # a limit (a few thousand nested brackets crash the interpreter) and the parser slows
            # quadratically with depth, so both must be stopped before composing.
            depth = 0
            nodes = 0
            for event in yaml.parse(text, Loader=_LOADER):
                if isinstance(event, yaml.CollectionStartEvent):
                    depth += 1
                    self.check_depth(depth, event.start_mark.line + 1, ())
                elif isinstance(event, yaml.CollectionEndEvent):
                    depth -= 1
                    continue
                elif not isinstance(event, yaml.ScalarEvent | yaml.AliasEvent):
                    continue
                nodes += 1
                if nodes > MAX_NODES:
                    self.problem(
                        event.start_mark.line + 1,
                        (),
                        f"more than {MAX_NODES} nodes; refusing the document",
                    )
                    raise _Unreadable
            return yaml.compose(text, Loader=_LOADER)
        except yaml.YAMLError as e:
            message = _error_text(e)
            if "maximum nesting depth" in message:
                # PyYAML >= 6.0.4 has a nesting limit of its own, which its scanner can reach
                # before the pre-scan above sees the event: report it as the same refusal.
                message = f"nested deeper than {MAX_DEPTH} levels; refusing the document"
            else:
                message = f"invalid YAML: {message}"
            self.problem(_error_line(e, text), (), message)
            raise _Unreadable from e

    def _node(self, node: yaml.Node, path: _Path, depth: int) -> Any:
        line = node.start_mark.line + 1
        self.lines.setdefault(path, line)
        self.count_node(line, path)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, path)
        self.check_depth(depth, line, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                self.problem(
                    line, path, f"unsupported tag {node.tag}: only plain lists are allowed"
                )
                return _INVALID
            return [self._node(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if node.tag != _MAP_TAG:
            self.problem(line, path, f"unsupported tag {node.tag}: only plain mappings are allowed")
            return _INVALID
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            self.count_node(key_line, path)
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(
                    key_line, path, "a mapping key must be a string, not a list or mapping"
                )
                continue
            if key_node.tag == _MERGE_TAG:
                self.problem(key_line, path, "merge keys (<<) are not supported")
                continue
            key = self._scalar(key_node, path)
            if key is _INVALID:
                continue
            if not isinstance(key, str):
                self.problem(
                    key_line,
                    path,
                    f"key {key_node.value!r} is read as {_kind(key)}; quote it to make it a string",
                )
                continue
            child = (*path, key)
            if key in result:
                self.problem(
                    key_line, child, f"duplicate key {key!r} (first at line {self.lines[child]})"
                )
                continue
            self.lines[child] = key_line
            result[key] = self._node(value_node, child, depth + 1)
        return result

    def _scalar(self, node: yaml.ScalarNode, path: _Path) -> Any:
        line = node.start_mark.line + 1
        if node.tag not in _SCALAR_TAGS:
            self.problem(line, path, f"unsupported tag {node.tag}")
            return _INVALID
        try:
            value = self.constructor.yaml_constructors[node.tag](self.constructor, node)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            kind = node.tag.removeprefix(_YAML)
            if kind == "int" and len(node.value) > MAX_INTEGER_DIGITS:
                self.problem(line, path, _TOO_LONG)
            else:
                self.problem(line, path, f"{node.value!r} is not a valid {kind}")
            return _INVALID
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(line, path, f"{node.value!r} cannot be represented in JSON")
            return _INVALID
        if integer_too_long(value):
            self.problem(line, path, _TOO_LONG)
            return _INVALID
        return value


class _ObjectWalker(_Builder):
    """JSON-like objects -> values, under the same type rules and caps as YAML text."""

    def walk(self, document: Any) -> Any:
        try:
            return self._value(document, (), 1)
        except _Unreadable:
            return _INVALID

    def _value(self, value: Any, path: _Path, depth: int) -> Any:
        self.count_node(None, path)
        if integer_too_long(value):
            self.problem(None, path, _TOO_LONG)
            return _INVALID
        if value is None or isinstance(value, str | bool | int | date):
            return value
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            self.problem(None, path, f"{value!r} cannot be represented in JSON")
            return _INVALID
        if isinstance(value, list | tuple):
            self.check_depth(depth, None, path)
            return [self._value(item, (*path, i), depth + 1) for i, item in enumerate(value)]
        if isinstance(value, Mapping):
            self.check_depth(depth, None, path)
            result: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    self.problem(None, path, f"key {key!r} is not a string")
                    continue
                result[key] = self._value(item, (*path, key), depth + 1)
            return result
        self.problem(None, path, f"a value of type {type(value).__name__} is not allowed")
        return _INVALID


_TOO_LONG = f"an integer of more than {MAX_INTEGER_DIGITS} digits; refusing it"


def integer_too_long(value: Any) -> bool:
    """Whether `value` is an integer of more than MAX_INTEGER_DIGITS decimal digits."""
    return isinstance(value, int) and not -_INTEGER_BOUND < value < _INTEGER_BOUND


def _error_line(error: yaml.YAMLError, text: str) -> int | None:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    if mark is not None:
        return mark.line + 1
    position = getattr(error, "position", None)
    if isinstance(position, int):
        # libyaml counts in bytes of the UTF-8 text, the pure-Python reader in characters.
        if _LOADER is yaml.SafeLoader:
            return text.count("\n", 0, position) + 1
        return text.encode("utf-8")[:position].count(b"\n") + 1
    return None


def _error_text(error: yaml.YAMLError) -> str:
    problem = getattr(error, "problem", None)
    if problem is None:
        return str(error).splitlines()[0]
    context = getattr(error, "context", None)
    return f"{problem} ({context})" if context else problem


# --- validation: values + lines -> Channel, every problem collected


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, datetime | date):
        return "a timestamp"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


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

    base = _ReleaseBase(_json_value(chart), _json_value(values), chart_ok)
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
    )
