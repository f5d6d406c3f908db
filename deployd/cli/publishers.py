"""`deployd publisher create|list|revoke`: who may publish (release engineers, CI jobs), and
what and where.

Publishers live in the servers' Redis, so these commands talk to Redis (`--redis-url` or
REDIS_URL), never to a server: a publisher token never makes another, and these commands, like
every `--redis-url` command, are the operator's own admin path, with no scopes. `create` takes
the token's scopes (`--action`, `--channel`, see `deployd.publishers.Scopes`), prints the new
token once, alone on stdout; only its SHA-256 is stored. For a static setup (or a server without
Redis), `create --tokens-file FILE` appends ``NAME:SHA256:ACTIONS[:CHANNELS]`` to a file the
servers read at start (DEPLOYD_PUBLISHER_TOKENS_FILE).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from deployd.cli import Subparsers
from deployd.cli.targets import user_name
from deployd.errors import ConfigError, ConflictError
from deployd.publishers import (
    ACTIONS,
    Scopes,
    check_publisher_name,
    load_tokens_file,
    new_token,
    token_hash,
    tokens_file_line,
)
from deployd.publishers.changes import add_publisher, revoke_publisher
from deployd.server.settings import settings_from_env
from deployd.store.redis import RedisStore


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("publisher", help="create, list and revoke publisher tokens")
    actions = parser.add_subparsers(dest="publisher_action", metavar="ACTION", required=True)

    create = actions.add_parser(
        "create",
        help="make a publisher token; prints only the token, once",
        description="Make a token that acts as NAME (the name history records) within its"
        " scopes and print it on stdout, alone. Only its SHA-256 is kept: store the token in"
        " your CI's secrets (as DEPLOYD_PUBLISHER_TOKEN) now, it cannot be shown again.",
    )
    create.add_argument("name", metavar="NAME", help="who publishes with it, like ci or alice")
    create.add_argument(
        "--action",
        dest="actions",
        action="append",
        choices=ACTIONS,
        required=True,
        metavar="ACTION",
        help=f"what the token may do (repeatable): {', '.join(ACTIONS)}; admin implies every"
        " action on every channel",
    )
    create.add_argument(
        "--channel",
        dest="channels",
        action="append",
        default=[],
        metavar="GLOB",
        help="a channel publish, promote, rollback and rollout may change (repeatable): a name like"
        " stable or a glob like 'beta-*' or '*'",
    )
    where = create.add_mutually_exclusive_group()
    where.add_argument("--redis-url", metavar="URL", help="the servers' Redis (default: REDIS_URL)")
    where.add_argument(
        "--tokens-file",
        metavar="FILE",
        help="append NAME:SHA256:ACTIONS[:CHANNELS] to FILE instead (servers read"
        " DEPLOYD_PUBLISHER_TOKENS_FILE at start)",
    )
    create.set_defaults(func=create_command)

    listing = actions.add_parser("list", help="publishers, whether they are active, their scopes")
    listing.add_argument(
        "--redis-url", metavar="URL", help="the servers' Redis (default: REDIS_URL)"
    )
    listing.set_defaults(func=list_command)

    revoke = actions.add_parser(
        "revoke",
        help="stop a publisher's token from working, on every server at once",
        description="Revoke NAME's token. The name stays listed (history keeps naming it) and may"
        " be given a new token with `create`.",
    )
    revoke.add_argument("name", metavar="NAME")
    revoke.add_argument(
        "--redis-url", metavar="URL", help="the servers' Redis (default: REDIS_URL)"
    )
    revoke.set_defaults(func=revoke_command)


def _store(redis_url: str | None) -> RedisStore:
    settings = settings_from_env(redis_url=redis_url) if redis_url else settings_from_env()
    if settings.redis_url is None:
        raise ConfigError(
            "publishers are kept in the servers' Redis: pass --redis-url or set REDIS_URL."
            " For servers without Redis, `create --tokens-file FILE` writes a tokens file"
            " (DEPLOYD_PUBLISHER_TOKENS_FILE); the embedded development server also accepts the"
            " token in .deployd/dev-publisher.token"
        )
    return RedisStore.from_url(settings.redis_url)


def create_command(args: argparse.Namespace) -> int:
    name = check_publisher_name(args.name)
    scopes = Scopes.of(args.actions, args.channels)
    token = new_token()
    if args.tokens_file:
        _append_to_tokens_file(Path(args.tokens_file), name, token, scopes)
        where = f"{args.tokens_file}; servers read it when they start"
    else:
        store = _store(args.redis_url)
        try:
            add_publisher(store, name, token_hash(token), scopes=scopes, actor=user_name())
        finally:
            store.close()
        where = "the store; every server accepts it at once"
    print(token)
    print(
        f"publisher {name!r} ({scopes.describe()}) added to {where}. This is the only time the"
        " token is shown: keep it in your CI's secrets as DEPLOYD_PUBLISHER_TOKEN",
        file=sys.stderr,
    )
    return 0


def _append_to_tokens_file(path: Path, name: str, token: str, scopes: Scopes) -> None:
    if path.exists() and name in {p.name for p in load_tokens_file(path).values()}:
        raise ConflictError(f"{path} already names publisher {name!r}; remove that line first")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(tokens_file_line(name, token, scopes))


def list_command(args: argparse.Namespace) -> int:
    store = _store(args.redis_url)
    try:
        publishers = store.publishers()
    finally:
        store.close()
    if not publishers:
        print("no publishers (create one with `deployd publisher create NAME`)", file=sys.stderr)
    width = max((len(p.name) for p in publishers), default=0)
    for publisher in publishers:
        state = "active" if publisher.active else f"revoked {publisher.revoked_at}"
        scopes = Scopes.of_record(publisher).describe()
        print(f"{publisher.name:<{width}}  created {publisher.created_at}  {state}  {scopes}")
    return 0


def revoke_command(args: argparse.Namespace) -> int:
    store = _store(args.redis_url)
    try:
        revoked = revoke_publisher(store, args.name, actor=user_name())
    finally:
        store.close()
    if not revoked:
        print(f"deployd: error: no active publisher named {args.name!r}", file=sys.stderr)
        return 1
    print(f"revoked publisher {args.name!r}; its token no longer works on any server")
    return 0
