"""The release console's pages that only read: channels, a channel (releases, adoption chart,
health, history with its changes), fleet, customers and events. Each calls the same domain
functions as the JSON API (deployd.api)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from flask import Response, request

from deployd.console.context import bp, page
from deployd.errors import BadRequestError, NotFoundError
from deployd.events import EventQuery, list_events
from deployd.fleet import queries
from deployd.fleet.model import InstanceRecord
from deployd.protocol import parse_rfc3339, rfc3339
from deployd.publishing.changes import describe_changes
from deployd.rollouts.health import ReleaseHealth
from deployd.rollouts.history import history_entries
from deployd.server.services import services
from deployd.store import ChannelRecord
from deployd.web.charts import Chart, stacked_bars

HISTORY_SHOWN = 25
EVENTS_PER_PAGE = 50
FLEET_PER_PAGE = 50


@bp.get("/")
def channels() -> Response:
    return page("console/channels.html", "Channels", channels=channel_rows())


def channel_rows() -> list[dict[str, Any]]:
    deployd = services()
    rows = []
    for name in deployd.state.channel_names():
        found = deployd.state.channel(name)
        record = deployd.store.get_channel(name)
        if found is None or record is None:
            continue
        sequence, channel = found
        halted = deployd.state.halted(name)
        rows.append(
            {
                "name": name,
                "sequence": sequence,
                "newest": channel.newest.version,
                "rollouts": [(r.version, r.rollout) for r in channel.releases if r.rollout < 100],
                "required": [r.version for r in channel.releases if r.required],
                "halted": sorted(halted),
                "publisher": record.publisher,
                "published_at": record.published_at,
            }
        )
    return rows


@bp.get("/channels/<name>")
def channel(name: str) -> Response:
    return channel_page(name)


def channel_page(name: str, *, status: int = 200, **message: str) -> Response:
    deployd = services()
    found = deployd.state.channel(name)
    if found is None:
        raise NotFoundError(f"There is no channel named {name!r}.", code="unknown_channel")
    sequence, channel = found
    health = _health(name)
    records = deployd.store.history(name)
    return page(
        "console/channel.html",
        f"Channel {name}",
        status=status,
        name=name,
        sequence=sequence,
        channel=channel,
        health=health,
        chart=adoption_chart(name, [r.version for r in channel.releases]),
        history=history_with_changes(records, deployd.store.rollout_events(name)),
        other_channels=[c for c in deployd.state.channel_names() if c != name],
        **message,
    )


def _health(name: str) -> dict[str, ReleaseHealth]:
    rollouts = services().rollouts
    if rollouts is None:
        return {}
    return {h.release.version: h for h in rollouts.health(name)}


def adoption_chart(name: str, releases: Sequence[str]) -> Chart:
    """Instances per release, hourly over the last 7 days, as a stacked bar chart."""
    found = queries.adoption(services().store, name, hours=queries.ADOPTION_DEFAULT_HOURS)
    points = [(_hour_label(p["at"]), p["instances"]) for p in found["points"]]
    return stacked_bars(points, title=f"Adoption of {name}", preferred=releases)


def _hour_label(at: str) -> str:
    return parse_rfc3339(at).strftime("%m-%d %H:00")


def history_with_changes(records: list[ChannelRecord], events: list[Any]) -> list[dict[str, Any]]:
    """The newest history entries, each publish with the readable list of what it changed."""
    documents = {r.sequence: r.document for r in records}
    entries = history_entries(records, events)[:HISTORY_SHOWN]
    for entry in entries:
        if "event" in entry and entry.get("event") in ("halt", "resume"):
            continue
        sequence = entry.get("sequence")
        if isinstance(sequence, int) and sequence in documents:
            entry["changes"] = describe_changes(documents.get(sequence - 1), documents[sequence])
    return entries


@bp.get("/fleet")
def fleet() -> Response:
    deployd = services()
    args = {k: v for k, v in request.args.items() if v}
    try:
        seen = _seen_filter(args)
        query = queries.fleet_query({**args, **seen, "limit": str(FLEET_PER_PAGE)}, _releases_of)
        found = deployd.store.fleet_page(query)
    except BadRequestError as e:
        return page(
            "console/fleet.html",
            "Fleet",
            status=400,
            args=args,
            rows=[],
            cursor=None,
            channels=deployd.state.channel_names(),
            error=e.message,
        )
    return page(
        "console/fleet.html",
        "Fleet",
        args=args,
        rows=[_instance_row(r) for r in found.instances],
        cursor=found.cursor,
        channels=deployd.state.channel_names(),
    )


def _seen_filter(args: Mapping[str, str]) -> dict[str, str]:
    """`seen` (hours) as the API's seenSince."""
    hours = args.get("seen")
    if not hours:
        return {}
    if not hours.isdigit() or not 1 <= int(hours) <= 24 * 365:
        raise BadRequestError("'Seen within' must be a whole number of hours from 1 to 8760.")
    since = datetime.now(UTC).timestamp() - int(hours) * 3600
    return {"seenSince": rfc3339(since)}


def _releases_of(name: str) -> list[str] | None:
    found = services().state.channel(name)
    return None if found is None else [r.version for r in found[1].releases]


def _instance_row(record: InstanceRecord) -> dict[str, Any]:
    return {
        "subject": record.subject,
        "agent": record.agent_id or "",
        "channel": record.channel,
        "running": record.running or "",
        "first_seen": rfc3339(record.first_seen),
        "last_seen": rfc3339(record.last_seen),
        "agent_version": record.agent_version or "",
        "kubernetes": record.kubernetes_version or "",
    }


@bp.get("/customers")
def customers() -> Response:
    records = sorted(services().store.customers(), key=lambda r: r.subject)
    return page("console/customers.html", "Customers", customers=records)


@bp.get("/events")
def events() -> Response:
    before = request.args.get("before", "")
    if before and not (before.isdigit() and len(before) < 18 and int(before) >= 1):
        return page(
            "console/events.html",
            "Events",
            status=400,
            events=[],
            next_before=None,
            error="'before' must be an event id (a whole number from 1).",
        )
    query = EventQuery(before=int(before) if before else None, limit=EVENTS_PER_PAGE)
    found = list_events(services().store, query)
    return page("console/events.html", "Events", events=found.events, next_before=found.next_before)
