"""Publishing channels into a store: validate everything first, then one atomic swap per channel."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployd.channels import Channel, channel_digest, load_channel_paths
from deployd.store import ChannelRecord, Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishResult:
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
    """Make `channel` (already validated) current; a document equal to the current one is kept.

    Raises PreconditionFailedError when `expected_sequence` is given and the channel moved on.
    """
    digest = channel_digest(channel.document)
    current = store.get_channel(channel.name)
    if expected_sequence is None and current is not None and current.digest == digest:
        return PublishResult(current, changed=False)
    record = store.publish(
        channel.name,
        document=channel.document,
        source=source,
        digest=digest,
        publisher=publisher,
        summary=summarize(current.document if current else None, channel.document),
        expected_sequence=expected_sequence,
    )
    logger.info(
        "published channel %s sequence %d by %s: %s",
        record.name,
        record.sequence,
        publisher,
        record.summary,
    )
    return PublishResult(record, changed=True)


def publish_channels(
    store: Store, items: Iterable[tuple[Channel, str]], *, publisher: str
) -> list[PublishResult]:
    """Publish (channel, source text) pairs, every one of them validated before the first write."""
    items = list(items)
    return [publish_channel(store, ch, source=src, publisher=publisher) for ch, src in items]


def channel_sources(paths: Iterable[str | Path]) -> list[tuple[Channel, str]]:
    """Parse every channel file under `paths` (all-or-nothing) with its source text."""
    channels = load_channel_paths(paths)
    return [(channel, _source_of(channel, paths)) for channel in channels]


def _source_of(channel: Channel, paths: Iterable[str | Path]) -> str:
    for path in paths:
        path = Path(path)
        candidates = [path] if path.is_file() else sorted(path.glob("*.y*ml"))
        for candidate in candidates:
            if candidate.stem == channel.name and candidate.suffix in {".yaml", ".yml"}:
                return candidate.read_text(encoding="utf-8")
    raise FileNotFoundError(channel.name)


def seed_store(store: Store, channels_dir: str | Path) -> list[PublishResult]:
    """Load every channel file of `channels_dir` into `store` (the embedded default)."""
    return publish_channels(store, channel_sources([channels_dir]), publisher="seed")


def summarize(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> str:
    """One line for people: releases added, removed and changed, and channel-wide changes."""
    new_releases = {r["version"]: r for r in new.get("releases", [])}
    if old is None:
        return f"created with {len(new_releases)} release{'s' if len(new_releases) != 1 else ''}"
    old_releases = {r["version"]: r for r in old.get("releases", [])}
    parts = []
    added = [v for v in new_releases if v not in old_releases]
    removed = [v for v in old_releases if v not in new_releases]
    if added:
        parts.append("added " + ", ".join(added))
    if removed:
        parts.append("removed " + ", ".join(removed))
    for version, release in new_releases.items():
        before = old_releases.get(version)
        if before is None or before == release:
            continue
        changes = [
            f"{key} {before.get(key, '-')} -> {release.get(key, '-')}"
            for key in ("rollout", "required")
            if before.get(key) != release.get(key)
        ]
        other = [
            key
            for key in sorted(set(before) | set(release))
            if key not in {"rollout", "required"} and before.get(key) != release.get(key)
        ]
        changes += [f"{key} changed" for key in other]
        parts.append(f"changed {version} ({', '.join(changes)})")
    for key in ("chart", "values", "description"):
        if old.get(key) != new.get(key):
            parts.append(f"channel {key} changed")
    return "; ".join(parts) or "no change"
