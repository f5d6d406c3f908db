"""Publishing channels into a store: validate everything first, then one atomic swap per channel."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployd.channels import (
    Channel,
    channel_digest,
    channel_from_document,
    load_channel_sources,
)
from deployd.errors import (
    ChannelValidationError,
    NotFoundError,
    PreconditionFailedError,
    Problem,
)
from deployd.events import PUBLISH, ROLLBACK, record_event
from deployd.publishing.changes import summarize
from deployd.store import ChannelRecord, Store

logger = logging.getLogger(__name__)


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
    event: str = PUBLISH,
    event_data: Mapping[str, Any] | None = None,
) -> PublishResult:
    """Make `channel` (already validated) the current version of its channel.

    A document equal to the current one (same digest) is not published again: the result has
    `changed=False` and the current sequence. With `expected_sequence` (0 for a new channel),
    raises PreconditionFailedError unless the channel is still at that sequence. Without it, a
    publish that races another is compared and summarized again against the winner's document.
    `note` (like ``rollback to 3``) goes in front of the history summary. A publish that
    changed the channel is recorded in the event log as an `event` (publish, rollback, promote)
    with the sequence, the summary and `event_data`.
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
        record_event(
            store,
            event,
            channel=record.name,
            actor=publisher,
            data={"sequence": record.sequence, "summary": record.summary, **(event_data or {})},
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


def seed_store(store: Store, channels_dir: str | Path) -> list[PublishResult]:
    """Publish every channel file of `channels_dir` as publisher ``seed`` (the embedded default).

    Channels whose document is already current are left alone, so seeding twice changes nothing.
    """
    return publish_channels(store, load_channel_sources([channels_dir]), publisher="seed")


def _noted(note: str | None, summary: str) -> str:
    return f"{note}: {summary}" if note else summary


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
        event=ROLLBACK,
        event_data={"to": sequence},
    )
