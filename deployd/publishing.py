"""Publishing channels into a store: validate everything first, then one atomic swap per channel."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployd.channels import (
    DOCUMENT_FIELD,
    Channel,
    channel_digest,
    channel_from_document,
    load_channel_paths,
    parse_channel_text,
)
from deployd.errors import ChannelValidationError, PreconditionFailedError, Problem
from deployd.semver import Version
from deployd.store import ChannelRecord, Store

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
) -> PublishResult:
    """Make `channel` (already validated) the current version of its channel.

    A document equal to the current one (same digest) is not published again: the result has
    `changed=False` and the current sequence. With `expected_sequence` (0 for a new channel),
    raises PreconditionFailedError unless the channel is still at that sequence. Without it, a
    publish that races another is compared and summarized again against the winner's document.
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
                summary=summarize(current.document if current else None, channel.document),
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
