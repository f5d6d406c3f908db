"""Writing to and reading the event log in the store.

`record_event` is the one way anything appends an event. It never raises into its caller: an
event is worth less than the publish or revocation it describes, so a store error is logged
(once a minute at most) and counted in `recording_failures()`, and the caller goes on. It makes
one store round trip: call it from publisher and admin paths or a background task, never from
the poll path.

`list_events` reads with filters and pages: newest first (the next page is `before` the
smallest id returned), or oldest first `after` an id (how `deployd events tail --follow` and
webhook delivery read on).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from deployd.errors import ConfigError, DeploydError
from deployd.events.types import SERVER_ACTOR, new_event
from deployd.metrics.hooks import change_recorded
from deployd.protocol import parse_rfc3339, rfc3339
from deployd.store import EventRecord, Store

logger = logging.getLogger(__name__)

DEFAULT_EVENTS_MAX = 10_000
MAX_PAGE = 500
_SCAN_CHUNK = 500
_LOG_EVERY_SECONDS = 60.0

_lock = threading.Lock()
_events_max: int | None = None
_failures = 0
_last_logged = float("-inf")


def configure_log(events_max: int) -> None:
    """How many events the store keeps (DEPLOYD_EVENTS_MAX; set by the server at start)."""
    global _events_max
    _events_max = events_max


def events_max() -> int:
    """The configured bound, else DEPLOYD_EVENTS_MAX from the environment (CLI commands that
    write into the store), else the default."""
    if _events_max is not None:
        return _events_max
    from deployd.server.settings import settings_from_env

    try:
        return settings_from_env().events_max
    except ConfigError:
        return DEFAULT_EVENTS_MAX


def record_event(
    store: Store,
    type: str,
    *,
    channel: str | None = None,
    subject: str | None = None,
    actor: str = SERVER_ACTOR,
    data: Mapping[str, Any] | None = None,
) -> EventRecord | None:
    """Append an event to the log; the stored event, or None when it could not be recorded
    (logged and counted, never raised). A type that is not in EVENT_TYPES is a programming
    error and raises ValueError."""
    event = new_event(type, actor=actor, channel=channel, subject=subject, data=data or {})
    change_recorded(type)
    try:
        return store.append_event(event, keep=events_max())
    except DeploydError as e:
        _count_failure(type, e.message)
    except Exception as e:  # an event must never fail the change it describes
        _count_failure(type, e.__class__.__name__)
    return None


def recording_failures() -> int:
    """Events this process could not record since it started."""
    return _failures


def _count_failure(type: str, reason: str) -> None:
    global _failures, _last_logged
    with _lock:
        _failures += 1
        now = time.monotonic()
        if now - _last_logged < _LOG_EVERY_SECONDS:
            return
        _last_logged = now
        failures = _failures
    logger.warning("could not record a %s event (%d lost since start): %s", type, failures, reason)


def event_time(text: str) -> str:
    """An RFC 3339 time with its offset as events write times (``YYYY-MM-DDTHH:MM:SSZ``, which
    compare as text); raises ValueError for anything else."""
    try:
        return rfc3339(parse_rfc3339(text).timestamp())
    except (OverflowError, OSError) as e:
        raise ValueError(f"time out of range: {e}") from e


@dataclass(frozen=True)
class EventQuery:
    """What to read: events of `types` (all when empty), of `channel` and `subject` when given,
    recorded at or after `since` (``YYYY-MM-DDTHH:MM:SSZ``); `after` an id oldest first, else
    newest first `before` an id (or from the newest)."""

    types: Collection[str] = ()
    channel: str | None = None
    subject: str | None = None
    since: str | None = None
    after: int | None = None
    before: int | None = None
    limit: int = 50

    def matches(self, event: EventRecord) -> bool:
        return (
            (not self.types or event.type in self.types)
            and (self.channel is None or event.channel == self.channel)
            and (self.subject is None or event.subject == self.subject)
            and (self.since is None or event.at >= self.since)
        )


@dataclass(frozen=True)
class EventPage:
    """The events found and where the next page starts (None: nothing more now)."""

    events: list[EventRecord]
    next_after: int | None
    next_before: int | None

    def to_dict(self) -> dict[str, Any]:
        """The page as GET /api/v1/events answers it."""
        return {
            "events": [event.to_dict() for event in self.events],
            "nextAfter": self.next_after,
            "nextBefore": self.next_before,
        }


def list_events(store: Store, query: EventQuery) -> EventPage:
    """One page of the events `query` asks for. Reads the log in chunks until the page is full
    or the log ends, so a rare filter costs at most one pass over the (bounded) log."""
    limit = max(1, min(query.limit, MAX_PAGE))
    oldest_first = query.after is not None
    after, before = query.after or 0, query.before
    found: list[EventRecord] = []
    while len(found) < limit:
        chunk = store.read_events(
            after=after, before=before, limit=_SCAN_CHUNK, oldest_first=oldest_first
        )
        for event in chunk:
            if oldest_first:
                after = event.id
            else:
                before = event.id
            if query.matches(event):
                found.append(event)
                if len(found) == limit:
                    break
        if len(chunk) < _SCAN_CHUNK:
            break
    if oldest_first:
        # A tail goes on after the last event read (matching or not), so it never reads it again.
        return EventPage(found, next_after=after, next_before=None)
    more = len(found) == limit and before is not None and before > 1
    return EventPage(found, next_after=None, next_before=before if more else None)
