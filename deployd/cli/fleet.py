"""`deployd fleet list` and `deployd fleet adoption CHANNEL`: the instances that poll and how a
channel's releases are adopted, from a server (`--server`, a publisher token) or its Redis."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol
from urllib.parse import quote

from deployd.channels import channel_from_document
from deployd.cli import Subparsers
from deployd.cli.remote import SERVER_ENV, client_from
from deployd.cli.targets import _redis_url, add_target_arguments
from deployd.errors import ConfigError
from deployd.fleet import queries
from deployd.protocol import CHANNELS_PATH, FLEET_PATH
from deployd.store import Store

FILTERS = ("channel", "customer", "release", "seenSince", "seenBefore", "behind", "limit", "cursor")


def register(subparsers: Subparsers) -> None:
    fleet = subparsers.add_parser(
        "fleet",
        help="the instances that poll and how releases are adopted",
        description="What deployd knows of the clusters that poll it.",
    )
    commands = fleet.add_subparsers(dest="fleet_command", metavar="COMMAND", required=True)
    listing = commands.add_parser(
        "list",
        help="instances, newest seen first",
        description="One page of instances, newest seen first; the last line says how to get"
        " the next page.",
    )
    listing.add_argument("--channel", metavar="NAME")
    listing.add_argument("--customer", metavar="SUB", help="a license subject")
    listing.add_argument("--release", metavar="VERSION", help="instances running it")
    listing.add_argument("--seen-since", dest="seenSince", metavar="RFC3339")
    listing.add_argument("--seen-before", dest="seenBefore", metavar="RFC3339")
    listing.add_argument("--behind", metavar="N", help="at least N releases behind the newest")
    listing.add_argument("--limit", metavar="N", help="instances per page (default 100)")
    listing.add_argument("--cursor", metavar="CURSOR", help="the next page's cursor")
    add_target_arguments(listing, writes=False)
    listing.set_defaults(func=run_list)

    adoption = commands.add_parser(
        "adoption",
        help="instances per release of a channel, now and hourly",
        description="The instances of CHANNEL per release they run, now and at each hour.",
    )
    adoption.add_argument("channel", metavar="CHANNEL")
    adoption.add_argument("--hours", default="24", metavar="N", help="hours back (default 24)")
    add_target_arguments(adoption, writes=False)
    adoption.set_defaults(func=run_adoption)


class FleetReader(Protocol):
    def fleet(self, args: dict[str, str]) -> dict[str, Any]: ...

    def adoption(self, channel: str, hours: str) -> dict[str, Any]: ...


class _ServerReader:
    def __init__(self, server: str, token: str | None) -> None:
        self.client = client_from(server, token)

    def fleet(self, args: dict[str, str]) -> dict[str, Any]:
        return self.client.read(FLEET_PATH, args)

    def adoption(self, channel: str, hours: str) -> dict[str, Any]:
        path = f"{CHANNELS_PATH}/{quote(channel, safe='')}/adoption"
        return self.client.read(path, {"hours": hours})


class _StoreReader:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _releases_of(self, name: str) -> list[str] | None:
        record = self.store.get_channel(name)
        if record is None:
            return None
        return [r.version for r in channel_from_document(record.document).releases]

    def fleet(self, args: dict[str, str]) -> dict[str, Any]:
        return queries.fleet_page(self.store, queries.fleet_query(args, self._releases_of))

    def adoption(self, channel: str, hours: str) -> dict[str, Any]:
        wanted = queries.adoption_hours({"hours": hours})
        if self.store.get_channel(channel) is None:
            raise ConfigError(f"no channel named {channel!r}")
        return queries.adoption(self.store, channel, hours=wanted)


@contextmanager
def _reader(args: argparse.Namespace) -> Iterator[FleetReader]:
    if args.server and args.redis_url:
        raise ConfigError("give --server or --redis-url, not both")
    server = args.server or (None if args.redis_url else os.environ.get(SERVER_ENV) or None)
    if server:
        reader = _ServerReader(server, args.token)
        try:
            yield reader
        finally:
            reader.client.close()
        return
    from deployd.store.redis import RedisStore

    store = RedisStore.from_url(_redis_url(args))
    try:
        yield _StoreReader(store)
    finally:
        store.close()


def run_list(args: argparse.Namespace) -> int:
    filters = {name: getattr(args, name) for name in FILTERS if getattr(args, name)}
    with _reader(args) as reader:
        page = reader.fleet(filters)
    rows = [
        (
            i["lastSeen"],
            i["customer"],
            i["channel"],
            i["reportedRelease"] or i["servedRelease"] or "-",
            i["agentInstanceId"] or f"({i['userAgent'] or 'no user agent'})",
            i["agentVersion"] or "-",
            i["kubernetesVersion"] or "-",
        )
        for i in page["instances"]
    ]
    header = ("LAST SEEN", "CUSTOMER", "CHANNEL", "RUNNING", "INSTANCE", "AGENT", "KUBERNETES")
    _print_table([header, *rows])
    if page["cursor"]:
        print(f"more: --cursor {page['cursor']}")
    return 0


def run_adoption(args: argparse.Namespace) -> int:
    with _reader(args) as reader:
        adoption = reader.adoption(args.channel, args.hours)
    current = adoption["current"]
    print(f"{adoption['channel']}: {sum(current.values())} instances")
    _print_table([("RELEASE", "INSTANCES"), *((r, str(n)) for r, n in current.items())])
    for point in adoption["points"]:
        counts = " ".join(f"{r}={n}" for r, n in point["instances"].items()) or "-"
        print(f"{point['at']}  {counts}")
    return 0


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
