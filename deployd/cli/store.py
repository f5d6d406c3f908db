"""`deployd store init|status|backup|restore`: the servers' Redis store as a whole.

A Redis that lost its data (restarted without persistence, a new database) is *uninitialised*:
the servers serve nothing from it and refuse to publish into it until it is initialised again,
empty (`init`) or from a backup (`restore`). Why: deployd/store/__init__.py.
"""

from __future__ import annotations

import argparse
import sys

from deployd.cli import Subparsers
from deployd.errors import ConfigError
from deployd.server.settings import settings_from_env
from deployd.store import ALL_CHANNELS, Store
from deployd.store.backup import read_backup, restore_backup, take_backup, write_backup
from deployd.store.redis import RedisStore


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "store", help="initialise, inspect, back up and restore the servers' Redis store"
    )
    actions = parser.add_subparsers(dest="store_action", metavar="ACTION", required=True)

    init = actions.add_parser(
        "init",
        help="initialise a new, empty store (servers serve nothing from Redis until then)",
        description="Give an empty Redis a new store identity (epoch), so servers serve from it"
        " and publishers can publish. After Redis lost its data, prefer `restore` from a backup;"
        " else pass --sequence-floor above any sequence clients may hold, so new publishes are"
        " not mistaken for rollbacks and no sequence names two documents.",
    )
    init.add_argument(
        "--sequence-floor",
        type=_whole_number,
        default=0,
        metavar="N",
        help="every channel's next publish gets a sequence above N (default 0)",
    )
    init.add_argument(
        "--floors-from",
        metavar="BACKUP",
        help="also stay above the high-water marks and sequences recorded in this backup file",
    )
    _redis_argument(init)
    init.set_defaults(func=init_command)

    status = actions.add_parser(
        "status",
        help="epoch, generation, channels, revocations and Redis persistence",
        description="Print what the store holds and how Redis keeps it. Exits 1 when the store"
        " is not initialised.",
    )
    _redis_argument(status)
    status.set_defaults(func=status_command)

    backup = actions.add_parser(
        "backup",
        help="write everything but rate-limit counts to a JSON file (atomically)",
        description="Write channels with their history, revocations, publishers (token hashes),"
        " high-water marks and the epoch to FILE: a versioned JSON document, written to a"
        " temporary file and renamed, so FILE is never half written.",
    )
    backup.add_argument("file", metavar="FILE")
    _redis_argument(backup)
    backup.set_defaults(func=backup_command)

    restore = actions.add_parser(
        "restore",
        help="load a backup into the store, under a new epoch",
        description="Replace the store's contents with the backup in FILE. The store gets a new"
        " epoch, so every running server drops what it had and reloads. Refuses a store that"
        " holds channels, revocations or publishers unless --force.",
    )
    restore.add_argument("file", metavar="FILE")
    restore.add_argument("--force", action="store_true", help="replace a store that is not empty")
    _redis_argument(restore)
    restore.set_defaults(func=restore_command)


def _redis_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis-url", metavar="URL", help="the servers' Redis (default: REDIS_URL)"
    )


def _whole_number(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _open(args: argparse.Namespace) -> RedisStore:
    overrides = {"redis_url": args.redis_url} if args.redis_url else {}
    redis_url = settings_from_env(**overrides).redis_url
    if redis_url is None:
        raise ConfigError(
            "the store commands work on the servers' Redis: pass --redis-url or set REDIS_URL"
            " (the embedded development server's store lives and dies with its process)"
        )
    return RedisStore.from_url(redis_url)


def init_command(args: argparse.Namespace) -> int:
    floors = read_backup(args.floors_from).high_water_marks() if args.floors_from else {}
    if args.sequence_floor:
        floors[ALL_CHANNELS] = max(floors.get(ALL_CHANNELS, 0), args.sequence_floor)
    store = _open(args)
    try:
        epoch = store.initialize(floors=floors)
        where = store.server
    finally:
        store.close()
    print(f"initialised the store at {where}: epoch {epoch}", file=sys.stderr)
    return 0


def status_command(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        lines, initialised = status_lines(store)
        lines.insert(0, f"store: Redis at {store.server}")
    finally:
        store.close()
    print("\n".join(lines))
    return 0 if initialised else 1


def status_lines(store: Store) -> tuple[list[str], bool]:
    """What `deployd store status` prints about `store`, and whether it is initialised."""
    marker = store.marker()
    sequences = store.sequences()
    _, revocations = store.revocations_since(0)
    persistence = store.persistence()
    epoch = marker.epoch or (
        "none: NOT INITIALISED, nothing is served from it; run `deployd store restore FILE`"
        " or `deployd store init`"
    )
    if not persistence.checked:
        durability = f"unknown, {persistence.description}"
    elif persistence.persisted:
        durability = persistence.description
    else:
        durability = f"{persistence.description}: NOT PERSISTED, a restart loses everything"
    return [
        f"epoch: {epoch}",
        f"generation: {marker.generation}",
        f"channels: {len(sequences)}{_listed(sequences)}",
        f"revocations: {revocations}",
        f"high-water marks: {_pairs(store.floors()) or 'none'}",
        f"persistence: {durability}",
    ], marker.epoch is not None


# Channels listed by name in `status`; past that, only how many more there are.
LISTED_CHANNELS = 20


def _pairs(marks: dict[str, int]) -> str:
    pairs = [f"{name} {mark}" for name, mark in sorted(marks.items())]
    more = len(pairs) - LISTED_CHANNELS
    return ", ".join(pairs[:LISTED_CHANNELS]) + (f" and {more} more" if more > 0 else "")


def _listed(marks: dict[str, int]) -> str:
    return f" ({_pairs(marks)})" if marks else ""


def backup_command(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        contents = take_backup(store)
    finally:
        store.close()
    write_backup(contents, args.file)
    print(
        f"backed up {len(contents.channels)} channels, {len(contents.revocations)} revocations,"
        f" {len(contents.publishers)} publishers, {len(contents.customers)} customer records"
        f" and {len(contents.halts)} halts (epoch {contents.epoch}) to {args.file}",
        file=sys.stderr,
    )
    return 0


def restore_command(args: argparse.Namespace) -> int:
    contents = read_backup(args.file)
    store = _open(args)
    try:
        epoch = restore_backup(store, contents, force=args.force)
    finally:
        store.close()
    print(
        f"restored {len(contents.channels)} channels, {len(contents.revocations)} revocations,"
        f" {len(contents.publishers)} publishers, {len(contents.customers)} customer records"
        f" and {len(contents.halts)} halts from {args.file}: new epoch {epoch}",
        file=sys.stderr,
    )
    return 0
