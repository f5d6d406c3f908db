"""What an event is: its types and the bounds every event is kept within.

An event says what changed, who changed it and where, in a few small fields: names, ids,
versions and numbers, never a license, a token, a secret or free text someone typed (a
revocation's reason stays with the revocation, not in its event). `new_event` builds one and
enforces the bounds: strings are cut to `MAX_TEXT` characters, and a `data` dict larger than
`MAX_DATA_BYTES` as JSON is replaced by a note saying so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from deployd.protocol import utc_now
from deployd.store import EventRecord

PUBLISH, ROLLBACK, PROMOTE = "publish", "rollback", "promote"
HALT, RESUME, REVOKE = "halt", "resume", "revoke"
CUSTOMER, PUBLISHER, INSTANCE = "customer", "publisher", "instance"
EVENT_TYPES: tuple[str, ...] = (
    PUBLISH,
    ROLLBACK,
    PROMOTE,
    HALT,
    RESUME,
    REVOKE,
    CUSTOMER,
    PUBLISHER,
    INSTANCE,
)

# The actor of what the server does by itself (an automatic halt, an instance first seen).
SERVER_ACTOR = "deployd"
MAX_TEXT = 200
MAX_DATA_BYTES = 4096


def new_event(
    type: str,
    *,
    actor: str,
    channel: str | None,
    subject: str | None,
    data: Mapping[str, Any],
) -> EventRecord:
    """An event to append (its id is given by the store). Raises ValueError for an unknown
    type: the types are the contract webhook receivers filter on."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    return EventRecord(
        id=0,
        type=type,
        at=utc_now(),
        actor=_text(actor) or SERVER_ACTOR,
        channel=_text(channel) if channel is not None else None,
        subject=_text(subject) if subject is not None else None,
        data=_bounded(data),
    )


def _text(value: str) -> str:
    return str(value)[:MAX_TEXT]


def _bounded(data: Mapping[str, Any]) -> dict[str, Any]:
    cleaned = {_text(key): _value(value) for key, value in data.items()}
    size = len(json.dumps(cleaned, separators=(",", ":"), default=str))
    if size > MAX_DATA_BYTES:
        return {"truncated": f"data of {size} bytes left out (at most {MAX_DATA_BYTES})"}
    return cleaned


def _value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, Mapping):
        return {_text(key): _value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_value(item) for item in value]
    return _text(str(value))
