"""The fleet's read APIs, for the HTTP endpoints and the CLI alike: `GET /api/v1/fleet` (one page
of instances) and `GET /api/v1/channels/<name>/adoption` (instances per release, now and hourly)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from deployd.errors import BadRequestError
from deployd.fleet.model import InstanceRecord
from deployd.fleet.paging import MAX_PAGE, Cursor, FleetQuery
from deployd.protocol import parse_rfc3339, rfc3339
from deployd.store import Store

ADOPTION_DEFAULT_HOURS = 7 * 24
ADOPTION_MAX_HOURS = 8 * 24

# channel name -> its release versions, oldest first (None for an unknown channel)
ReleasesOf = Callable[[str], list[str] | None]


def fleet_query(args: Mapping[str, str], releases_of: ReleasesOf) -> FleetQuery:
    """The query `GET /api/v1/fleet` (or `deployd fleet list`) asks for; BadRequestError for a
    malformed filter."""
    query = FleetQuery(
        channel=args.get("channel") or None,
        customer=args.get("customer") or None,
        release=args.get("release") or None,
        seen_since=_time(args, "seenSince"),
        seen_before=_time(args, "seenBefore"),
        cursor=Cursor.decode(args["cursor"]) if args.get("cursor") else None,
        limit=_whole(args, "limit", 100, low=1, high=MAX_PAGE),
    )
    if args.get("behind"):
        query = replace(query, keep=behind_by(_whole(args, "behind", 1, low=1), releases_of))
    return query


def behind_by(releases: int, releases_of: ReleasesOf) -> Callable[[InstanceRecord], bool]:
    """A filter: the instance runs a release at least `releases` older than its channel's
    newest (an instance on a release its channel no longer lists counts as behind)."""
    cache: dict[str, list[str] | None] = {}

    def keep(record: InstanceRecord) -> bool:
        if record.channel not in cache:
            cache[record.channel] = releases_of(record.channel)
        versions = cache[record.channel]
        if not versions or record.running is None:
            return False
        if record.running not in versions:
            return True
        return len(versions) - 1 - versions.index(record.running) >= releases

    return keep


def fleet_page(store: Store, query: FleetQuery) -> dict[str, Any]:
    page = store.fleet_page(query)
    return {"instances": [r.to_api() for r in page.instances], "cursor": page.cursor}


def adoption(
    store: Store, channel: str, *, hours: int = ADOPTION_DEFAULT_HOURS, now: float | None = None
) -> dict[str, Any]:
    """The channel's live counts per release and its hourly points over the last `hours`."""
    now = time.time() if now is None else now
    since = math.floor(now / 3600) - hours
    return {
        "channel": channel,
        "current": dict(sorted(store.release_counts(channel).items())),
        "points": [
            {"at": rfc3339(hour * 3600), "instances": dict(sorted(counts.items()))}
            for hour, counts in store.adoption(channel, since)
        ],
    }


def adoption_hours(args: Mapping[str, str]) -> int:
    return _whole(args, "hours", ADOPTION_DEFAULT_HOURS, low=1, high=ADOPTION_MAX_HOURS)


def _time(args: Mapping[str, str], name: str) -> float | None:
    text = args.get(name)
    if not text:
        return None
    try:
        return parse_rfc3339(text).timestamp()
    except ValueError:
        raise BadRequestError(
            f"{name} must be an RFC 3339 time with a UTC offset, e.g. 2026-11-29T12:00:00Z",
            code="bad_query",
        ) from None


def _whole(args: Mapping[str, str], name: str, default: int, *, low: int, high: int = 10**6) -> int:
    text = args.get(name)
    if not text:
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise BadRequestError(
            f"{name} must be a whole number from {low} to {high}", code="bad_query"
        )
    return int(text)
