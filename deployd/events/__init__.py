"""The event log: an append-only, bounded record of what changed (publishes, rollbacks,
promotions, halts, resumes, revocations, customer and publisher changes, instances first seen),
readable at GET /api/v1/events and with `deployd events tail`, and POSTed to webhooks.

`record_event(store, type, *, channel, subject, actor, data)` is the one function that writes
it; it never raises into its caller (`deployd.events.log`). Webhook settings and the signed POST:
`deployd.events.webhooks`; delivery, one worker at a time: `deployd.events.delivery`.
"""

from deployd.events.log import (
    EventPage,
    EventQuery,
    configure_log,
    list_events,
    record_event,
    recording_failures,
)
from deployd.events.types import (
    CUSTOMER,
    EVENT_TYPES,
    HALT,
    INSTANCE,
    PROMOTE,
    PUBLISH,
    PUBLISHER,
    RESUME,
    REVOKE,
    ROLLBACK,
    SERVER_ACTOR,
)

__all__ = [
    "CUSTOMER",
    "EVENT_TYPES",
    "HALT",
    "INSTANCE",
    "PROMOTE",
    "PUBLISH",
    "PUBLISHER",
    "RESUME",
    "REVOKE",
    "ROLLBACK",
    "SERVER_ACTOR",
    "EventPage",
    "EventQuery",
    "configure_log",
    "list_events",
    "record_event",
    "recording_failures",
]
