"""`deployd publish PATH...`: check channel files, then make each one current, atomically.

Every file is validated before anything is written; with any problem the command lists them all
(``file:line: field: message``) and changes nothing. Where the channels go is a *target*: a
context manager yielding a function that publishes one validated channel and returns its
`PublishResult`. Today there is one target, the server's Redis (`--redis-url`, or REDIS_URL).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from deployd.channels import Channel
from deployd.config import settings_from_env
from deployd.errors import ChannelValidationError, ConfigError
from deployd.publishing import PublishResult, channel_sources, publish_channel
from deployd.store.redis import RedisStore

Target = Callable[[Channel, str], PublishResult]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `publish` command to the `deployd` parser."""
    parser = subparsers.add_parser(
        "publish",
        help="publish channel files",
        description="Validate channel files (all of them, before anything is written), then "
        "make each channel's document current in one atomic step. A channel whose document did "
        "not change keeps its sequence.",
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="channel files or directories of them"
    )
    parser.add_argument(
        "--redis-url",
        metavar="URL",
        help="the Redis the servers read (default: $REDIS_URL)",
    )
    parser.add_argument(
        "--publisher",
        metavar="NAME",
        help="who publishes, kept in each channel's history (default: your user name)",
    )
    parser.set_defaults(func=run_publish)


def run_publish(args: argparse.Namespace) -> int:
    """Exit status 0 when every channel is current (one line each on stdout), 1 on bad files.

    Raises ConfigError when no Redis is named and StoreUnavailableError when it cannot be reached;
    channels reported before such a failure were published.
    """
    publisher = args.publisher or _user_name()
    redis_url = _redis_url(args)
    try:
        items = channel_sources(args.paths)
    except ChannelValidationError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return 1
    with redis_target(redis_url, publisher=publisher) as publish:
        for channel, source in items:
            print(describe(channel.name, publish(channel, source)), flush=True)
    return 0


def describe(name: str, result: PublishResult) -> str:
    """``stable: sequence 3 (added 1.5.0)`` or ``stable: unchanged (sequence 2)``."""
    if not result.changed:
        return f"{name}: unchanged (sequence {result.record.sequence})"
    return f"{name}: sequence {result.record.sequence} ({result.record.summary})"


@contextmanager
def redis_target(url: str, *, publisher: str) -> Iterator[Target]:
    """Publish straight into the Redis every server reads (they see it within a second or two)."""
    store = RedisStore.from_url(url)
    try:
        yield lambda channel, source: publish_channel(
            store, channel, source=source, publisher=publisher
        )
    finally:
        store.close()


def _redis_url(args: argparse.Namespace) -> str:
    overrides = {"redis_url": args.redis_url} if args.redis_url else {}
    redis_url = settings_from_env(**overrides).redis_url
    if redis_url is None:
        raise ConfigError(
            "publishing needs the Redis your servers use: pass --redis-url or set REDIS_URL."
            " A server without Redis keeps its channels in its own memory, loaded from its"
            " channels directory when it starts; `deployd channels check` validates files"
            " without publishing them"
        )
    return redis_url


def _user_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "cli"
