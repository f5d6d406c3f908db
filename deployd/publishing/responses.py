"""The JSON shapes a write and a history entry answer with, alike in the HTTP API and the CLI."""

from __future__ import annotations

from typing import Any

from deployd.publishing.promotion import Promotion
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


def rollback_dict(result: PublishResult, sequence: int) -> dict[str, Any]:
    """The answer to a rollback: the write's answer and the sequence rolled back to."""
    return {**outcome_dict(result), "rolledBackTo": sequence}


def promotion_dict(promotion: Promotion, source: str) -> dict[str, Any]:
    """The answer to a promotion from channel `source`: the target's write, the release promoted
    and the values paths whose effective value differs from the source's."""
    return {
        **outcome_dict(promotion.result),
        "promoted": {"from": source, "version": promotion.version},
        "valuesDiffer": promotion.values_differ,
    }
