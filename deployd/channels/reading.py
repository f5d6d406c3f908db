"""Reading a channel: YAML text or JSON-like objects -> plain values and the line of each field.

YAML is read with PyYAML's safe composer and turned into Python values node by node (dates kept as
date/datetime), which is what gives every field its line; the text size, the nesting depth and the
number of nodes (counting every alias expansion, so YAML bombs stop early) are capped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, Protocol

import yaml
from yaml.constructor import SafeConstructor

from deployd.channels.model import _Path, field_path
from deployd.errors import Problem

MAX_TEXT_BYTES = 1024 * 1024
MAX_DEPTH = 32
MAX_NODES = 100_000
# Python converts integers of more digits than this to text only with a ValueError (its
# int_max_str_digits default), and every channel is written out as JSON: longer ones are refused.
MAX_INTEGER_DIGITS = 4300
_INTEGER_BOUND = 10**MAX_INTEGER_DIGITS

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YAML = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_YAML + t for t in ("str", "null", "bool", "int", "float", "timestamp")}
_MAP_TAG = _YAML + "map"
_SEQ_TAG = _YAML + "seq"
_MERGE_TAG = _YAML + "merge"


class _Invalid:
    """Stands in for a value that was already reported, so later checks don't report it again."""

    def __repr__(self) -> str:
        return "<invalid>"


_INVALID = _Invalid()


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
                    self.check_depth(depth, _event_line(event), ())
                elif isinstance(event, yaml.CollectionEndEvent):
                    depth -= 1
                    continue
                elif not isinstance(event, yaml.ScalarEvent | yaml.AliasEvent):
                    continue
                nodes += 1
                if nodes > MAX_NODES:
                    self.problem(
                        _event_line(event),
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


class _Mark(Protocol):
    """Where PyYAML found something (its pure-Python and libyaml marks both have `line`)."""

    line: int


def _event_line(event: yaml.Event) -> int | None:
    """The line `event` starts on (the parser marks every event; PyYAML's types allow none)."""
    mark = event.start_mark
    return mark.line + 1 if mark is not None else None


def _error_line(error: yaml.YAMLError, text: str) -> int | None:
    mark: _Mark | None = getattr(error, "problem_mark", None)
    mark = mark or getattr(error, "context_mark", None)
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
