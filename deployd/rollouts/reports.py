"""Checking a report an instance sends after a reconcile (`POST /api/v1/operator/report`).

Everything is checked against what the worker holds in memory (the channel it serves), so a
report is accepted or refused without a store round trip: an unknown outcome, a release the
channel does not have, a timestamp far from now, an oversized message or an odd instance id is a
400 naming the field.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from deployd.channels import Channel
from deployd.errors import BadRequestError, NotFoundError
from deployd.protocol import INSTANCE_ID_PATTERN, parse_rfc3339
from deployd.rollouts.records import OUTCOMES, Report

MAX_REPORT_BYTES = 16_384  # a 500-character message of escaped astral characters fits
MAX_MESSAGE_CHARS = 500
# How far a report's `at` may be from the server's clock.
MAX_REPORT_AGE = timedelta(days=7)
MAX_REPORT_AHEAD = timedelta(minutes=10)
INSTANCE_ID = re.compile(INSTANCE_ID_PATTERN, re.ASCII)
REPORT_KEYS = frozenset({"instance", "release", "outcome", "message", "at", "channel"})


def check_report(
    payload: Any, *, channel: Channel, subject: str, now: datetime | None = None
) -> Report:
    """The report `payload` (a parsed JSON body) makes for `channel`; BadRequestError otherwise."""
    if not isinstance(payload, dict):
        raise BadRequestError("the body must be a JSON object")
    unknown = sorted(set(payload) - REPORT_KEYS)
    if unknown:
        raise BadRequestError(
            f"unknown field {unknown[0]!r}; a report has {', '.join(sorted(REPORT_KEYS))}"
        )
    instance = _string(payload, "instance")
    if not INSTANCE_ID.fullmatch(instance):
        raise BadRequestError(
            "'instance' must be an instance id: 1 to 64 letters, digits, '.', '_', ':' or '-'"
        )
    outcome = _string(payload, "outcome")
    if outcome not in OUTCOMES:
        raise BadRequestError(f"'outcome' must be one of {', '.join(OUTCOMES)}")
    release = channel.release(_string(payload, "release"))
    if release is None:
        raise NotFoundError(
            f"channel {channel.name!r} has no release {str(payload['release'])[:64]!r}",
            code="unknown_release",
        )
    message = payload.get("message", "")
    if not isinstance(message, str) or len(message) > MAX_MESSAGE_CHARS:
        raise BadRequestError(
            f"'message' must be a string of at most {MAX_MESSAGE_CHARS} characters"
        )
    at = _moment(payload, now or datetime.now(UTC))
    return Report(
        channel=channel.name,
        release=release.version,
        instance=instance,
        outcome=outcome,
        message=message,
        at=at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        subject=subject,
    )


def _string(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise BadRequestError(f"{key!r} is required and must be a non-empty string")
    return value


def _moment(payload: dict[str, Any], now: datetime) -> datetime:
    """The report's `at` (now when absent), within MAX_REPORT_AGE before and MAX_REPORT_AHEAD
    after `now`."""
    if "at" not in payload:
        return now
    raw = payload["at"]
    try:
        if not isinstance(raw, str) or len(raw) > 40:
            raise ValueError(raw)
        at = parse_rfc3339(raw)
    except ValueError as e:
        raise BadRequestError(
            "'at' must be an RFC 3339 timestamp with an offset, like 2026-11-29T14:00:00Z"
        ) from e
    if at < now - MAX_REPORT_AGE or at > now + MAX_REPORT_AHEAD:
        raise OutOfWindowError(
            f"'at' is too far from the server's clock ({now:%Y-%m-%dT%H:%M:%SZ}): a report"
            " must be at most 7 days old and at most 10 minutes ahead; this one was dropped"
        )
    return at


class OutOfWindowError(BadRequestError):
    """A well-formed report dated too far from now: dropped and counted, not an error answer
    (the sender's clock or queue is off; sending it again would not help)."""

    code = "bad_timestamp"
