"""`deployd publish PATH...`: check channel files, then make each changed one current, atomically.

Every file is validated before anything is written; with any problem the command lists them all
(``file:line: field: message``) and changes nothing. Then each channel whose document differs
from what the target serves is published in one atomic step over exactly the version that was
compared (If-Match), so a publish made meanwhile by someone else is reported, never overwritten.
The target is a server (`--server`, with a publisher token) or its Redis (`--redis-url`); see
`deployd.cli.targets`. `--dry-run` prints what would change, channel by channel, and writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from deployd.channels import channel_digest, load_channel_sources
from deployd.cli import Subparsers
from deployd.cli.targets import add_target_arguments, open_target
from deployd.errors import ChannelValidationError
from deployd.publishing import describe_changes, summarize


def register(subparsers: Subparsers) -> None:
    """Add the `publish` command to the `deployd` parser."""
    parser = subparsers.add_parser(
        "publish",
        help="publish channel files to a server (or its Redis)",
        description="Validate channel files (all of them, before anything is written), then "
        "make each channel whose document changed current in one atomic step. A channel whose "
        "document did not change keeps its sequence.",
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="channel files or directories of them"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would change in each channel (releases, rollout, values) and publish"
        " nothing",
    )
    add_target_arguments(parser)
    parser.set_defaults(func=run_publish)


def run_publish(args: argparse.Namespace) -> int:
    """Exit status 0 when every channel is current (one line each on stdout), 1 on bad files.

    Raises ConfigError when no target is named, StoreUnavailableError or a server error when the
    target fails; channels reported before such a failure were published.
    """
    try:
        items = load_channel_sources(args.paths)
    except ChannelValidationError as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        return 1
    with open_target(args) as target:
        changing = 0
        for channel, source in items:
            current = target.document(channel.name)
            if current is not None and current["digest"] == channel_digest(channel.document):
                print(f"{channel.name}: unchanged (sequence {current['sequence']})", flush=True)
                continue
            changing += 1
            if args.dry_run:
                print(_planned(channel.name, current, channel.document), flush=True)
                continue
            expected = current["sequence"] if current is not None else 0
            outcome = target.publish(channel, source, expected_sequence=expected)
            print(describe(outcome), flush=True)
        if args.dry_run:
            would = f"{changing} channel{'' if changing == 1 else 's'} would change"
            print(f"dry run: {would}; nothing was published to {target.where}")
    return 0


def describe(outcome: dict[str, Any]) -> str:
    """``stable: sequence 3 (added 1.5.0)`` or ``stable: unchanged (sequence 2)``."""
    name, sequence = outcome["channel"], outcome["sequence"]
    if not outcome["changed"]:
        return f"{name}: unchanged (sequence {sequence})"
    return f"{name}: sequence {sequence} ({outcome['summary']})"


def _planned(name: str, current: dict[str, Any] | None, document: dict[str, Any]) -> str:
    old = current["document"] if current is not None else None
    at = f"over sequence {current['sequence']}" if current is not None else "as a new channel"
    lines = [f"{name}: would publish {at} ({summarize(old, document)})"]
    lines += ["  " + line for line in describe_changes(old, document)]
    return "\n".join(lines)
