"""`deployd history`, `deployd rollback` and `deployd promote`: a channel's past and releases
moving between channels, the same operations as the HTTP API, against a server or its Redis.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from deployd.cli import Subparsers
from deployd.cli.publish import describe
from deployd.cli.rollout import describe_numbers
from deployd.cli.targets import add_target_arguments, open_target


def register(subparsers: Subparsers) -> None:
    """Add the `history`, `rollback` and `promote` commands to the `deployd` parser."""
    history = subparsers.add_parser(
        "history",
        help="a channel's published versions, or the source of one of them",
        description="List every published version of CHANNEL, newest first (sequence, when, who,"
        " what changed). With SEQUENCE, print that version's source exactly as it was published"
        " (e.g. to restore a file: deployd history stable 4 > channels/stable.yaml).",
    )
    history.add_argument("channel", metavar="CHANNEL")
    history.add_argument("sequence", nargs="?", type=sequence, metavar="SEQUENCE")
    add_target_arguments(history, writes=False)
    history.set_defaults(func=run_history)

    rollback = subparsers.add_parser(
        "rollback",
        help="publish an earlier version of a channel again",
        description="Publish the document of CHANNEL's version SEQUENCE again, as a new sequence"
        " (history only grows). Commit the same change to the channel's file in git, or the next"
        " `deployd publish` from git undoes the rollback: `deployd history CHANNEL SEQUENCE`"
        " prints that version's source.",
    )
    rollback.add_argument("channel", metavar="CHANNEL")
    rollback.add_argument("sequence", type=sequence, metavar="SEQUENCE")
    add_target_arguments(rollback)
    rollback.set_defaults(func=run_rollback)

    promote = subparsers.add_parser(
        "promote",
        help="copy one release from one channel into another",
        description="Copy release VERSION of channel --from into channel --to, as one publish of"
        " --to. The release keeps its own chart and values; its chart is pinned to what it"
        " installs in --from. The channel values of --to apply under the release's own (they are"
        " that channel's policy); the paths where that differs from --from are listed, and"
        " --pin-values keeps --from's values exactly instead.",
    )
    promote.add_argument("version", metavar="VERSION")
    promote.add_argument("--from", dest="source", required=True, metavar="CHANNEL")
    promote.add_argument("--to", dest="target", required=True, metavar="CHANNEL")
    promote.add_argument(
        "--rollout",
        type=percent,
        metavar="PERCENT",
        help="the release's rollout in --to (default: as in --from)",
    )
    promote.add_argument(
        "--pin-values",
        action="store_true",
        help="write into the release whatever makes its values in --to exactly those in --from",
    )
    add_target_arguments(promote)
    promote.set_defaults(func=run_promote)


def sequence(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def percent(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 100:
        raise ValueError(text)
    return value


def run_history(args: argparse.Namespace) -> int:
    with open_target(args) as target:
        if args.sequence is not None:
            sys.stdout.write(target.history_entry(args.channel, args.sequence)["source"])
            return 0
        entries = list(reversed(target.history(args.channel)))
    width = max(len(entry.get("publisher") or entry.get("by", "")) for entry in entries)
    for entry in entries:
        if "event" in entry:  # a halt or resume (deployd.rollouts), between the publishes
            print(
                f"{'':>5}  {entry['at']}  {entry['by']:<{width}}  {entry['event']}"
                f" {entry['release']}: {entry['reason']} ({describe_numbers(entry['numbers'])})"
            )
            continue
        print(
            f"{entry['sequence']:>5}  {entry['publishedAt']}  {entry['publisher']:<{width}}"
            f"  {entry['summary']}"
        )
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    with open_target(args) as target:
        outcome = target.rollback(args.channel, args.sequence)
    if not outcome["changed"]:
        print(
            f"{args.channel}: unchanged (sequence {outcome['sequence']} is already the document"
            f" of sequence {args.sequence})"
        )
    else:
        print(describe(outcome))
    return 0


def run_promote(args: argparse.Namespace) -> int:
    with open_target(args) as target:
        outcome: dict[str, Any] = target.promote(
            source=args.source,
            target=args.target,
            version=args.version,
            rollout=args.rollout,
            pin_values=args.pin_values,
        )
    version = outcome["promoted"]["version"]
    if not outcome["changed"]:
        print(f"{args.target}: unchanged (sequence {outcome['sequence']} already has {version})")
    else:
        print(describe(outcome))
    if outcome["valuesDiffer"]:
        print(
            f"note: {args.target}'s channel values apply to {version} where they differ from"
            f" {args.source}'s: {', '.join(outcome['valuesDiffer'])}"
            " (--pin-values keeps those of the source)",
            file=sys.stderr,
        )
    return 0
