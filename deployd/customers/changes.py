"""Changing customer records, and what the API and the CLI show of one; shared by both.

`set_customer` (a partial change, or with `replace` the whole record), `clear_customer` (some
fields, or the whole record) and `customer_dict` (the answer of `GET /api/v1/customers/<sub>`).
After every change that took place, `customer_changed` is called: the one place that tells the
rest of the server (the event log connects there).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from deployd.customers.records import (
    ATTRIBUTES,
    CHANNEL,
    EXTRA_CHANNELS,
    FIELDS,
    HOLD,
    PINNED_RELEASE,
    CustomerRecord,
    check_subject,
    record_fields,
)
from deployd.errors import BadRequestError
from deployd.events import CUSTOMER, record_event
from deployd.protocol import utc_now
from deployd.store import Store

logger = logging.getLogger(__name__)


def customer_changed(store: Store, subject: str, record: CustomerRecord | None, *, by: str) -> None:
    """Called once after each change of a customer record (`record` None: deleted): logs it and
    records a ``customer`` event with the settings now in force (never the notes, free text)."""
    logger.info("customer %s %s by %s", subject, "changed" if record is not None else "cleared", by)
    if record is None:
        data: dict[str, Any] = {"cleared": True}
    else:
        data = {k: v for k, v in record.settings().items() if k != "notes"}
        data["version"] = record.version
    record_event(store, CUSTOMER, subject=subject, actor=by, data=data)


def set_customer(
    store: Store,
    subject: str,
    values: Mapping[str, Any],
    *,
    by: str,
    replace_all: bool = False,
) -> CustomerRecord | None:
    """Set the fields in `values` (JSON names; null clears one) of `subject`'s record, or with
    `replace_all` make the record exactly `values`. BadRequestError for a bad field."""
    check_subject(subject)
    fields = record_fields(values)
    cleared = [name for name, value in values.items() if value is None]

    def change(current: CustomerRecord | None) -> CustomerRecord | None:
        base = CustomerRecord(subject) if replace_all or current is None else current
        wanted = _without(base, cleared)
        wanted = replace(wanted, **fields)
        return _stamped(wanted, current, by)

    return _apply(store, subject, change, by)


def clear_customer(
    store: Store, subject: str, *, by: str, fields: Iterable[str] = ()
) -> CustomerRecord | None:
    """Clear `fields` (JSON names) of `subject`'s record, or, with none named, delete it."""
    check_subject(subject)
    names = list(fields)
    unknown = sorted(set(names) - set(FIELDS))
    if unknown:
        raise BadRequestError(
            f"unknown customer field {unknown[0]!r}; the fields are {', '.join(FIELDS)}"
        )

    def change(current: CustomerRecord | None) -> CustomerRecord | None:
        if current is None or not names:
            return None
        return _stamped(_without(current, names), current, by)

    return _apply(store, subject, change, by)


def _apply(store: Store, subject: str, change: Any, by: str) -> CustomerRecord | None:
    before = store.customer(subject)
    after = store.update_customer(subject, change)
    if after != before:
        customer_changed(store, subject, after, by=by)
    return after


def _without(record: CustomerRecord, names: Iterable[str]) -> CustomerRecord:
    """`record` with the fields `names` back at their defaults."""
    defaults = CustomerRecord(record.subject)
    cleared = {ATTRIBUTES[name]: getattr(defaults, ATTRIBUTES[name]) for name in names}
    return replace(record, **cleared)


def _stamped(
    wanted: CustomerRecord, current: CustomerRecord | None, by: str
) -> CustomerRecord | None:
    """`wanted` stamped with who changed it and when; `current` when nothing changed; None
    when nothing is left in it (an empty record is no record)."""
    if current is not None and wanted.settings() == current.settings():
        return current
    if wanted.settings() == CustomerRecord(wanted.subject).settings():
        return None
    return replace(wanted, updated_at=utc_now(), updated_by=by)


def customer_dict(subject: str, record: CustomerRecord | None) -> dict[str, Any]:
    """What the API answers about one customer: its record (null without one) and, in words,
    what the record changes over the license's claims."""
    return {
        "subject": subject,
        "record": record.to_dict() if record is not None else None,
        "effect": effect(record),
    }


def effect(record: CustomerRecord | None) -> list[str]:
    """What `record` changes, one sentence per field set (empty: the license applies as is)."""
    if record is None:
        return []
    said = []
    if record.channel is not None:
        said.append(f"{CHANNEL}: serves channel {record.channel} instead of the license's channel")
    if record.extra_channels:
        said.append(
            f"{EXTRA_CHANNELS}: may also read {', '.join(record.extra_channels)}"
            " besides the license's channels"
        )
    if record.pinned_release is not None:
        said.append(
            f"{PINNED_RELEASE}: serves release {record.pinned_release} of every channel that has"
            " it; a channel without it is served as usual"
        )
    if record.hold:
        said.append(
            f"{HOLD}: serves again the release the caller runs, while its channel has it"
            " (as usual when the caller's release is unknown)"
        )
    return said
