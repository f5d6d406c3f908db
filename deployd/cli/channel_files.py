"""`deployd channels ...`: work with channel files before they are published."""

from __future__ import annotations

import argparse
import sys

from deployd.channels import load_channel_paths
from deployd.cli import Subparsers
from deployd.errors import ChannelValidationError


def register(subparsers: Subparsers) -> None:
    """Add the `channels` command group to the `deployd` parser."""
    parser = subparsers.add_parser("channels", help="work with channel files")
    commands = parser.add_subparsers(dest="channels_command", metavar="COMMAND", required=True)
    check = commands.add_parser(
        "check",
        help="validate channel files",
        description="Validate channel files the way publishing does, reporting every problem "
        "as FILE:LINE: FIELD: MESSAGE.",
    )
    check.add_argument(
        "paths",
        nargs="*",
        default=["channels"],
        metavar="PATH",
        help="channel files or directories of them (default: channels/)",
    )
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Exit status 0 when every channel is valid (one summary line on stdout), else 1."""
    try:
        channels = load_channel_paths(args.paths)
    except ChannelValidationError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return 1
    releases = sum(len(channel.releases) for channel in channels)
    print(f"ok: {_count(len(channels), 'channel')}, {_count(releases, 'release')}")
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
