"""`deployd events tail [--follow]`: the event log, from a server or straight from its Redis.

Prints the newest events (oldest of them first), one line each, then with --follow goes on
printing new ones as they are recorded, until interrupted:

    42  2026-11-29T14:20:07Z  publish    stable  -  alice  sequence=5 summary='added 1.6.0'
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Callable
from typing import Any

from deployd.cli import Subparsers
from deployd.cli.targets import ServerTarget, StoreTarget, add_target_arguments, open_target
from deployd.errors import BadRequestError
from deployd.events import EVENT_TYPES, EventQuery, list_events
from deployd.events.log import MAX_PAGE, event_time

# A page of the log as GET /api/v1/events answers it, for the query parameters given.
Reader = Callable[[dict[str, Any]], dict[str, Any]]


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("events", help="the event log: publishes, revocations, halts...")
    actions = parser.add_subparsers(dest="events_action", metavar="ACTION", required=True)
    tail = actions.add_parser(
        "tail",
        help="print the newest events; with --follow, new ones as they come",
        description="Print the newest events of the log (oldest first), one line each:"
        " id, time, type, channel, subject, who, details.",
    )
    tail.add_argument(
        "--type",
        dest="types",
        action="append",
        default=[],
        choices=EVENT_TYPES,
        metavar="TYPE",
        help=f"only events of this type (repeatable): {', '.join(EVENT_TYPES)}",
    )
    tail.add_argument("--channel", metavar="CHANNEL", help="only events of this channel")
    tail.add_argument("--subject", metavar="SUBJECT", help="only events of this customer")
    tail.add_argument(
        "--since", metavar="TIME", help="only events at or after TIME (like 2026-11-29T14:00:00Z)"
    )
    tail.add_argument(
        "-n", "--lines", type=_count, default=20, metavar="N", help="how many (default 20)"
    )
    tail.add_argument("-f", "--follow", action="store_true", help="go on printing new events")
    tail.add_argument(
        "--interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="with --follow, how often to look for new events (default 2)",
    )
    add_target_arguments(tail, writes=False)
    tail.set_defaults(func=run_tail)


def _count(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_PAGE:
        raise ValueError(text)
    return value


def run_tail(args: argparse.Namespace) -> int:
    filters: dict[str, Any] = {"type": ",".join(args.types) or None}
    filters.update(channel=args.channel, subject=args.subject, since=args.since)
    filters = {key: value for key, value in filters.items() if value}
    with open_target(args) as target:
        read = _reader(target)
        newest = read({**filters, "limit": args.lines})["events"]
        for event in reversed(newest):
            print(event_line(event), flush=True)
        after = max((event["id"] for event in newest), default=0)
        while args.follow:
            page = read({**filters, "after": after, "limit": MAX_PAGE})
            for event in page["events"]:
                print(event_line(event), flush=True)
            after = page["nextAfter"] or after
            if len(page["events"]) < MAX_PAGE:
                threading.Event().wait(args.interval)
    return 0


def _reader(target: ServerTarget | StoreTarget | Any) -> Reader:
    if isinstance(target, ServerTarget):
        return target.client.events
    store = target.store

    def read(params: dict[str, Any]) -> dict[str, Any]:
        query = EventQuery(
            types=frozenset(params["type"].split(",")) if params.get("type") else frozenset(),
            channel=params.get("channel"),
            subject=params.get("subject"),
            since=_since(params.get("since")),
            after=params.get("after"),
            limit=params["limit"],
        )
        return list_events(store, query).to_dict()

    return read


def _since(text: str | None) -> str | None:
    if text is None:
        return None
    try:
        return event_time(text)
    except ValueError as e:
        raise BadRequestError("--since must be an RFC 3339 time, like 2026-11-29T14:00:00Z") from e


def event_line(event: dict[str, Any]) -> str:
    """One event for people: id, time, type, channel, subject, actor, then its data."""
    details = " ".join(f"{key}={_shown(value)}" for key, value in event["data"].items())
    return (
        f"{event['id']:>6}  {event['at']}  {event['type']:<9}  {event['channel'] or '-'}"
        f"  {event['subject'] or '-'}  {event['actor']}  {details}"
    ).rstrip()


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return value if value and " " not in value and "'" not in value else repr(value)
    return json.dumps(value, separators=(",", ":"))
