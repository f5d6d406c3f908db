"""The JSON shapes a write and a history entry answer with, alike in the HTTP API and the CLI."""

from __future__ import annotations

from typing import Any

from deployd.publishing.publish import PublishResult
from deployd.store import ChannelRecord


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
