"""The fields of a customer record (`deployd.store.CustomerRecord`) and their limits.

Every field is checked when a record is built from outside input (`record_fields`): channel
names with the channel name pattern, the pinned release as semver, caps on the list of extra
channels and on the notes. A record that breaks a rule is refused with BadRequestError naming the
field, so a record in the store always follows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from deployd.channels import NAME_PATTERN
from deployd.errors import BadRequestError
from deployd.semver import Version
from deployd.store import MAX_CUSTOMERS, CustomerRecord

__all__ = ["MAX_CUSTOMERS", "CustomerRecord", "check_subject", "record_fields"]

MAX_SUBJECT_CHARS = 256
MAX_EXTRA_CHANNELS = 32
MAX_NOTES_CHARS = 2000
MAX_VERSION_CHARS = 128

# The fields a client sets, by their JSON names; updatedAt, updatedBy and version are the store's.
CHANNEL, EXTRA_CHANNELS, PINNED_RELEASE, HOLD, NOTES = (
    "channel",
    "extraChannels",
    "pinnedRelease",
    "hold",
    "notes",
)
FIELDS = (CHANNEL, EXTRA_CHANNELS, PINNED_RELEASE, HOLD, NOTES)


def check_subject(subject: Any) -> str:
    """`subject` if it can name a customer (a license's `sub`); BadRequestError otherwise."""
    if (
        not isinstance(subject, str)
        or not subject
        or len(subject) > MAX_SUBJECT_CHARS
        or not subject.isprintable()
    ):
        raise BadRequestError(
            f"a customer is named by its license's subject (sub): printable text of 1 to"
            f" {MAX_SUBJECT_CHARS} characters"
        )
    return subject


def record_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """The checked keyword arguments of CustomerRecord for the JSON `values` given (a field
    that is absent or null is left out); BadRequestError names the first bad field."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise BadRequestError(
            f"unknown customer field {unknown[0]!r}; the fields are {', '.join(FIELDS)}"
        )
    checked: dict[str, Any] = {}
    for name, value in values.items():
        if value is None:
            continue
        checked[ATTRIBUTES[name]] = _CHECKS[name](value)
    return checked


def _channel(value: Any) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
        raise BadRequestError(
            f"'channel' must be a channel name (a-z, 0-9 and '-', at most 63), not {value!r}"
        )
    return value


def _extra_channels(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_EXTRA_CHANNELS:
        raise BadRequestError(
            f"'extraChannels' must be a list of at most {MAX_EXTRA_CHANNELS} channel names"
        )
    names = []
    for item in value:
        if not isinstance(item, str) or not NAME_PATTERN.fullmatch(item):
            raise BadRequestError(f"'extraChannels' holds {item!r}, which is not a channel name")
        names.append(item)
    return tuple(dict.fromkeys(names))


def _pinned_release(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_VERSION_CHARS:
        raise BadRequestError("'pinnedRelease' must be a release version (semver)")
    try:
        Version.parse(value)
    except ValueError as e:
        raise BadRequestError(
            f"'pinnedRelease' must be a release version (semver), not {value!r}"
        ) from e
    return value


def _hold(value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadRequestError("'hold' must be true or false")
    return value


def _notes(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_NOTES_CHARS:
        raise BadRequestError(f"'notes' must be text of at most {MAX_NOTES_CHARS} characters")
    return value


ATTRIBUTES = {
    CHANNEL: "channel",
    EXTRA_CHANNELS: "extra_channels",
    PINNED_RELEASE: "pinned_release",
    HOLD: "hold",
    NOTES: "notes",
}
_CHECKS: dict[str, Any] = {
    CHANNEL: _channel,
    EXTRA_CHANNELS: _extra_channels,
    PINNED_RELEASE: _pinned_release,
    HOLD: _hold,
    NOTES: _notes,
}
