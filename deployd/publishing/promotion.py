"""Promotion: copy one release from a channel into another as one publish of the target."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from deployd.channels import (
    Channel,
    Release,
    channel_from_document,
    field_path,
)
from deployd.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    PreconditionFailedError,
)
from deployd.events import PROMOTE
from deployd.publishing.publish import PublishResult, publish_channel
from deployd.publishing.sources import document_source
from deployd.store import ChannelRecord, Store
from deployd.values import deep_merge


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
                event=PROMOTE,
                event_data={"from": source, "version": release.version},
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
