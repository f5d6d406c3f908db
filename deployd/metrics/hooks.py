"""The one-line calls the rest of deployd makes to count what happens.

Off the poll path (store operations, recorded changes, store resets, refusals) they count in
every process. On the poll path `SpecCounter` counts the specs served; the server holds one only
while metrics are on (deployd.server.services.Services.spec_counter), and it binds the label
children of each (channel, release) once, so a poll costs one dict lookup and one addition to the
process's tally (deployd.metrics.tally).
"""

from __future__ import annotations

from typing import Any

from deployd.errors import DeploydError, LicenseError, RateLimitedError
from deployd.metrics.registry import (
    CHANGES,
    LICENSE_REFUSALS,
    RATE_LIMITED,
    SPECS_NOT_MODIFIED,
    SPECS_SERVED,
    STORE_DURATION,
    STORE_ERRORS,
    STORE_RESETS,
)
from deployd.metrics.tally import TALLY


class SpecCounter:
    """Counts specs served (200) by channel and release, and 304s by channel."""

    def __init__(self) -> None:
        self._served: dict[tuple[str, str], Any] = {}
        self._not_modified: dict[str, Any] = {}

    def served(self, channel: str, release: str) -> None:
        key = (channel, release)
        child = self._served.get(key)
        if child is None:
            child = self._served[key] = SPECS_SERVED.labels(channel, release)
        TALLY.inc(child)

    def not_modified(self, channel: str) -> None:
        child = self._not_modified.get(channel)
        if child is None:
            child = self._not_modified[channel] = SPECS_NOT_MODIFIED.labels(channel)
        TALLY.inc(child)


def refused(error: DeploydError) -> None:
    """Count a refusal answered with `error` (a license refusal by its code, or a rate limit)."""
    if isinstance(error, LicenseError):
        LICENSE_REFUSALS.labels(error.code).inc()
    elif isinstance(error, RateLimitedError):
        RATE_LIMITED.inc()


def store_operation(operation: str, seconds: float, *, failed: bool) -> None:
    """Count one store operation (`operation` is the store's fixed name for it, never a key)."""
    STORE_DURATION.labels(operation).observe(seconds)
    if failed:
        STORE_ERRORS.labels(operation).inc()


def change_recorded(event_type: str) -> None:
    """Count a change written to the event log (its type is one of deployd.events' types)."""
    CHANGES.labels(event_type).inc()


def store_reset() -> None:
    """Count a worker finding the store replaced or gone back (deployd.server.view)."""
    STORE_RESETS.inc()
