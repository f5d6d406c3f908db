"""Publishing channels into a store: validate everything first, then one atomic swap per channel."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from deployd.channels import (
    DOCUMENT_FIELD,
    Channel,
    Release,
    channel_digest,
    channel_from_document,
    field_path,
    load_channel_paths,
    parse_channel_text,
)
from deployd.errors import (
    BadRequestError,
    ChannelValidationError,
    ConflictError,
    NotFoundError,
    PreconditionFailedError,
    Problem,
)
from deployd.semver import Version
from deployd.store import ChannelRecord, Store
from deployd.values import deep_merge

logger = logging.getLogger(__name__)

# What a release is when its document leaves the key out (DESIGN.md, Channel YAML).
_RELEASE_DEFAULTS = {"rollout": 100, "required": False}


@dataclass(frozen=True)
class PublishResult:
    """The channel's current record after publishing; `changed` is False when it was kept."""

    record: ChannelRecord
    changed: bool


def publish_channel(
    store: Store,
    channel: Channel,
    *,
    source: str,
    publisher: str,
    expected_sequence: int | None = None,
    note: str | None = None,
) -> PublishResult:
    """Make `channel` (already validated) the current version of its channel.

    A document equal to the current one (same digest) is not published again: the result has
    `changed=False` and the current sequence. With `expected_sequence` (0 for a new channel),
    raises PreconditionFailedError unless the channel is still at that sequence. Without it, a
    publish that races another is compared and summarized again against the winner's document.
    `note` (like ``rollback to 3``) goes in front of the history summary.
    """
    digest = channel_digest(channel.document)
    while True:
        current = store.get_channel(channel.name)
        at = current.sequence if current is not None else 0
        if expected_sequence is not None and expected_sequence != at:
            raise PreconditionFailedError(
                f"channel {channel.name!r} is at sequence {at}, not {expected_sequence}"
            )
        if current is not None and current.digest == digest:
            return PublishResult(current, changed=False)
        try:
            record = store.publish(
                channel.name,
                document=channel.document,
                source=source,
                digest=digest,
                publisher=publisher,
                summary=_noted(
                    note, summarize(current.document if current else None, channel.document)
                ),
                expected_sequence=at,
            )
        except PreconditionFailedError:
            if expected_sequence is not None:
                raise
            continue
        logger.info(
            "published channel %s sequence %d by %s: %s",
            record.name,
            record.sequence,
            publisher,
            record.summary,
        )
        return PublishResult(record, changed=True)


def check_channels(items: Iterable[tuple[Channel, str]]) -> None:
    """Raise ChannelValidationError listing every problem of every channel, or return.

    Each document is validated again (a Channel can be built by hand) and a channel may appear
    only once.
    """
    problems: list[Problem] = []
    seen: set[str] = set()
    for channel, _source in items:
        try:
            channel_from_document(
                channel.document, filename=channel.name, expected_name=channel.name
            )
        except ChannelValidationError as e:
            problems.extend(e.problems)
        if channel.name in seen:
            problems.append(
                Problem(channel.name, None, "name", f"channel {channel.name!r} is given twice")
            )
        seen.add(channel.name)
    if problems:
        raise ChannelValidationError(problems)


def publish_channels(
    store: Store, items: Iterable[tuple[Channel, str]], *, publisher: str
) -> list[PublishResult]:
    """Publish (channel, source text) pairs in order, all of them checked before the first write.

    Each channel is swapped atomically on its own; channels whose document did not change keep
    their sequence. Raises ChannelValidationError (nothing written) when any pair is refused.
    """
    items = list(items)
    check_channels(items)
    return [publish_channel(store, ch, source=src, publisher=publisher) for ch, src in items]


def channel_sources(paths: Iterable[str | Path]) -> list[tuple[Channel, str]]:
    """Every channel under `paths` with the text it was parsed from (all-or-nothing).

    Raises ChannelValidationError listing the problems of every file.
    """
    paths = [Path(p) for p in paths]
    items = []
    for loaded in load_channel_paths(paths):
        file = _file_of(loaded.name, paths)
        # Parse again the very bytes kept as the source, so the two can never disagree even if
        # the file is being edited meanwhile.
        try:
            data = file.read_bytes()
        except OSError as e:
            problem = Problem(
                str(file), None, DOCUMENT_FIELD, f"cannot read the file: {e.strerror}"
            )
            raise ChannelValidationError([problem]) from e
        channel = parse_channel_text(data, filename=str(file), expected_name=loaded.name)
        items.append((channel, data.decode("utf-8")))
    return items


def _file_of(name: str, paths: list[Path]) -> Path:
    """The file `load_channel_paths` read channel `name` from (its stem is always the name)."""
    for path in paths:
        if path.is_dir():
            candidates = [path / f"{name}.yaml", path / f"{name}.yml"]
        else:
            candidates = [path] if path.stem == name else []
        for candidate in candidates:
            if candidate.is_file():
                return candidate
    raise ChannelValidationError(
        [Problem(name, None, DOCUMENT_FIELD, "the channel's file disappeared while being read")]
    )


def seed_store(store: Store, channels_dir: str | Path) -> list[PublishResult]:
    """Publish every channel file of `channels_dir` as publisher ``seed`` (the embedded default).

    Channels whose document is already current are left alone, so seeding twice changes nothing.
    """
    return publish_channels(store, channel_sources([channels_dir]), publisher="seed")


def summarize(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> str:
    """One line for people: releases added, removed and changed, and channel-wide changes.

    E.g. ``created with 4 releases`` or
    ``added 1.5.0; removed 1.2.0; changed 1.4.0 (rollout 25 -> 100); channel values changed``.
    """
    new_releases = _releases(new)
    if old is None:
        return f"created with {len(new_releases)} release{'' if len(new_releases) == 1 else 's'}"
    old_releases = _releases(old)
    parts = []
    added = [v for v in new_releases if v not in old_releases]
    removed = [v for v in old_releases if v not in new_releases]
    if added:
        parts.append("added " + ", ".join(added))
    if removed:
        parts.append("removed " + ", ".join(removed))
    for version, release in new_releases.items():
        before = old_releases.get(version)
        if before is not None and before != release:
            parts.append(f"changed {version} ({', '.join(_release_changes(before, release))})")
    for key in ("description", "chart", "values"):
        if old.get(key) != new.get(key):
            parts.append(f"channel {key} changed")
    if not parts and old.get("releases") != new.get("releases"):
        parts.append("releases reordered")
    return "; ".join(parts) or "no change"


def _releases(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """version -> release with its defaults filled in, in semver order."""
    releases = {r["version"]: {**_RELEASE_DEFAULTS, **r} for r in document.get("releases", ())}
    return dict(sorted(releases.items(), key=lambda item: Version.parse(item[0])))


def _release_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    changes = [
        f"{key} {_show(before[key])} -> {_show(after[key])}"
        for key in _RELEASE_DEFAULTS
        if before[key] != after[key]
    ]
    others = sorted((set(before) | set(after)) - set(_RELEASE_DEFAULTS))
    changes += [f"{key} changed" for key in others if before.get(key) != after.get(key)]
    return changes


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _noted(note: str | None, summary: str) -> str:
    return f"{note}: {summary}" if note else summary


def record_dict(record: ChannelRecord, *, full: bool = False) -> dict[str, Any]:
    """A history entry as the API and the CLI show it; `full` adds the document and its source."""
    body: dict[str, Any] = {
        "channel": record.name,
        "sequence": record.sequence,
        "publishedAt": record.published_at,
        "publisher": record.publisher,
        "digest": record.digest,
        "summary": record.summary,
    }
    if full:
        body["document"] = record.document
        body["source"] = record.source
    return body


def outcome_dict(result: PublishResult) -> dict[str, Any]:
    """The answer to a write, as the API and the CLI show it: the current record and `changed`."""
    record = result.record
    return {
        "channel": record.name,
        "sequence": record.sequence,
        "changed": result.changed,
        "digest": record.digest,
        "summary": record.summary,
        "publishedAt": record.published_at,
        "publisher": record.publisher,
    }


def document_source(document: Mapping[str, Any]) -> str:
    """YAML text of a document the server wrote itself (a promotion), kept as its source."""
    return yaml.safe_dump(
        dict(document), sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )


def rollback_channel(
    store: Store,
    name: str,
    sequence: int,
    *,
    publisher: str,
    expected_sequence: int | None = None,
) -> PublishResult:
    """Publish the document of history entry `sequence` again, as a new sequence.

    History only grows: the rollback is itself a publish (summary ``rollback to N: ...``), and
    rolling back to a document equal to the current one changes nothing. The old document is
    validated again first. Raises NotFoundError (unknown_channel, unknown_sequence),
    ChannelValidationError and PreconditionFailedError as `publish_channel` does.
    """
    entry = store.history_entry(name, sequence)
    if entry is None:
        if store.get_channel(name) is None:
            raise NotFoundError(f"no channel named {name!r}", code="unknown_channel")
        raise NotFoundError(f"channel {name!r} has no sequence {sequence}", code="unknown_sequence")
    channel = channel_from_document(
        entry.document, filename=f"{name} (sequence {sequence})", expected_name=name
    )
    return publish_channel(
        store,
        channel,
        source=entry.source,
        publisher=publisher,
        expected_sequence=expected_sequence,
        note=f"rollback to {sequence}",
    )


@dataclass(frozen=True)
class Promotion:
    """What `promote_release` did: the target's publish, the release id as written in the
    source, and the values paths whose effective value in the target differs from the source's
    (the target channel's own values; empty when the values were pinned)."""

    result: PublishResult
    version: str
    values_differ: list[str]


def promote_release(
    store: Store,
    *,
    source: str,
    target: str,
    version: str,
    publisher: str,
    rollout: int | None = None,
    pin_values: bool = False,
    expected_sequence: int | None = None,
) -> Promotion:
    """Copy release `version` of channel `source` into channel `target`, as one publish of it.

    The release mapping travels as written (its own chart, values, notes, releasedAt, required,
    rollout; `rollout` replaces the last). Its chart is pinned: wherever the target's channel
    chart differs, the source's effective chart is written into the release, so the promoted
    release installs exactly the same chart. Its values are the target's channel values with the
    release's own values over them, since channel values are that channel's policy (log level,
    replicas); the paths where that differs from what the source serves are reported, and
    `pin_values` writes the difference into the release instead, so it gets exactly the source's
    effective values. A release already in the target is left alone when it is the same (no new
    sequence) and refused with ConflictError (release_exists) when it differs.

    Raises NotFoundError (unknown_channel, unknown_release), ConflictError when values cannot be
    pinned, ChannelValidationError when the target would be invalid, PreconditionFailedError when
    `expected_sequence` is given and the target moved on. Without it, a publish to the target made
    meanwhile is never overwritten: the promotion is worked out again on top of it.
    """
    if source == target:
        raise BadRequestError("a release is promoted from one channel to another")
    origin_record = _existing(store, source)
    origin = channel_from_document(origin_record.document, filename=source)
    release = origin.release(version)
    if release is None:
        raise NotFoundError(
            f"channel {source!r} has no release {version!r}", code="unknown_release"
        )
    while True:
        record = _existing(store, target)
        if expected_sequence is not None and expected_sequence != record.sequence:
            raise PreconditionFailedError(
                f"channel {target!r} is at sequence {record.sequence}, not {expected_sequence}"
            )
        current = channel_from_document(record.document, filename=target)
        mapping = _promoted_mapping(release, current, rollout=rollout, pin_values=pin_values)
        existing = current.release(release.version)
        others = [
            r
            for r in record.document["releases"]
            if existing is None or r["version"] != existing.version
        ]
        document = {**record.document, "releases": [*others, mapping]}
        channel = channel_from_document(document, filename=target, expected_name=target)
        promoted = channel.release(release.version)
        assert promoted is not None  # it was just added
        if promoted.chart != release.chart or (pin_values and promoted.values != release.values):
            raise ConflictError(
                f"release {release.version} cannot be given the same "
                f"{'chart' if promoted.chart != release.chart else 'values'} in {target!r} as in"
                f" {source!r} (a null in the source's effective values cannot be written)",
                code="promotion_conflict",
            )
        differ = _differing_paths(release.values, promoted.values, ("values",))
        if existing is not None:
            if _same_release(existing, promoted):
                return Promotion(PublishResult(record, changed=False), release.version, differ)
            raise ConflictError(
                f"channel {target!r} already has release {existing.version}, different from the"
                f" one in {source!r}; change it by publishing {target!r}",
                code="release_exists",
            )
        try:
            result = publish_channel(
                store,
                channel,
                source=document_source(channel.document),
                publisher=publisher,
                expected_sequence=record.sequence,
                note=f"promoted {release.version} from {source}",
            )
        except PreconditionFailedError:
            if expected_sequence is not None:
                raise
            continue
        return Promotion(result, release.version, differ)


def _existing(store: Store, name: str) -> ChannelRecord:
    record = store.get_channel(name)
    if record is None:
        raise NotFoundError(f"no channel named {name!r}", code="unknown_channel")
    return record


def _promoted_mapping(
    release: Release, target: Channel, *, rollout: int | None, pin_values: bool
) -> dict[str, Any]:
    """The release mapping as it is written into `target`."""
    mapping = copy.deepcopy(release.document)
    if rollout is not None:
        mapping["rollout"] = rollout
    written_chart = mapping.get("chart") or {}
    fix = _override(deep_merge(target.chart, written_chart), release.chart)
    if fix:
        mapping["chart"] = {**written_chart, **fix}
    if pin_values:
        written_values = mapping.get("values") or {}
        fix = _override(deep_merge(target.values, written_values), release.values)
        if fix:
            mapping["values"] = _overlay(written_values, fix)
    return mapping


def _override(lower: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """A small mapping X such that ``deep_merge(lower, X) == wanted`` (nulls remove keys)."""
    result: dict[str, Any] = {key: None for key in lower if key not in wanted}
    for key, value in wanted.items():
        below = lower.get(key)
        if key in lower and below == value:
            continue
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            result[key] = _override(below, value)
        else:
            result[key] = value
    return result


def _overlay(written: Mapping[str, Any], fix: Mapping[str, Any]) -> dict[str, Any]:
    """`written` with `fix` laid over it key by key, nulls kept (they are instructions)."""
    result = dict(written)
    for key, value in fix.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = _overlay(result[key], value)
        else:
            result[key] = value
    return result


def _same_release(a: Release, b: Release) -> bool:
    """Whether two releases serve the same thing, however their mappings are written."""
    fields = ("chart", "values", "released_at", "notes", "required", "rollout")
    return all(getattr(a, name) == getattr(b, name) for name in fields)


def _differing_paths(
    old: Any, new: Any, path: tuple[str | int, ...], *, limit: int = 20
) -> list[str]:
    """Field paths (``values.global.logLevel``) where two values differ, at most `limit`."""
    if old == new:
        return []
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        return [field_path(path)]
    found: list[str] = []
    for key in [*old, *(k for k in new if k not in old)]:
        found += _differing_paths(old.get(key), new.get(key), (*path, key), limit=limit)
    return found[:limit]


def describe_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """What publishing `new` over `old` changes, one line each, for people (``--dry-run``).

    Lines start with ``+`` (added), ``-`` (removed) or ``~`` (changed); the fields of a changed
    release follow it, indented. Release fields count with their defaults, so leaving out
    ``rollout: 100`` is no change.
    """
    new_releases = _releases(new)
    if old is None:
        return [f"+ new channel with releases {', '.join(new_releases)}"]
    old_releases = _releases(old)
    lines = _leaf_changes(old.get("description"), new.get("description"), ("description",))
    for key in ("chart", "values"):
        lines += _leaf_changes(old.get(key) or {}, new.get(key) or {}, (key,))
    for version, release in new_releases.items():
        before = old_releases.get(version)
        if before is None:
            lines.append(f"+ release {version}{_release_brief(release)}")
        elif before != release:
            lines.append(f"~ release {version}")
            lines += ["    " + change for change in _leaf_changes(before, release, ())]
    lines += [f"- release {version}" for version in old_releases if version not in new_releases]
    if not lines and old != new:
        lines.append("~ releases reordered")
    return lines


def _release_brief(release: Mapping[str, Any]) -> str:
    details = []
    chart_version = (release.get("chart") or {}).get("version")
    if chart_version is not None:
        details.append(f"chart {chart_version}")
    if release["rollout"] != 100:
        details.append(f"rollout {release['rollout']}")
    if release["required"]:
        details.append("required")
    return f" ({', '.join(details)})" if details else ""


def _leaf_changes(old: Any, new: Any, path: tuple[str | int, ...]) -> list[str]:
    if old == new:
        return []
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        lines: list[str] = []
        for key in [*old, *(k for k in new if k not in old)]:
            if key not in new:
                lines.append(f"- {field_path((*path, key))}: {_brief(old[key])}")
            elif key not in old:
                lines.append(f"+ {field_path((*path, key))}: {_brief(new[key])}")
            else:
                lines += _leaf_changes(old[key], new[key], (*path, key))
        return lines
    return [f"~ {field_path(path)}: {_brief(old)} -> {_brief(new)}"]


def _brief(value: Any, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"
