"""`deployd rollout status|halt|resume`: watch a channel's rollout and stop or restart a release,
against a server (`--server` and a publisher token with the ``rollout`` scope to change) or its
Redis directly (`--redis-url`)."""

from __future__ import annotations

import argparse
from typing import Any

from deployd.cli import Subparsers
from deployd.cli.targets import add_target_arguments, open_target
from deployd.rollouts.records import HALT, RESUME


def register(subparsers: Subparsers) -> None:
    """Add the `rollout` command group to the `deployd` parser."""
    rollout = subparsers.add_parser(
        "rollout",
        help="a channel's rollout health; halt or resume a release",
        description="Per release: instances on it, on older releases, their latest reported"
        " outcomes and the halt policy. A halted release admits no new instances (those on it"
        " keep it) until resumed.",
    )
    actions = rollout.add_subparsers(dest="rollout_action", metavar="ACTION", required=True)
    status = actions.add_parser("status", help="the health of each release, newest first")
    status.add_argument("channel", metavar="CHANNEL")
    status.add_argument("release", nargs="?", metavar="RELEASE")
    add_target_arguments(status, writes=False)
    status.set_defaults(func=run_status)
    for action, text in ((HALT, "stop a release admitting new instances"), (RESUME, "lift a halt")):
        parser = actions.add_parser(action, help=text)
        parser.add_argument("channel", metavar="CHANNEL")
        parser.add_argument("release", metavar="RELEASE")
        parser.add_argument("--reason", default="", help="kept in the channel's history")
        add_target_arguments(parser)
        parser.set_defaults(func=run_change, rollout_change=action)


def run_status(args: argparse.Namespace) -> int:
    with open_target(args) as target:
        releases = target.rollout_status(args.channel)
    if args.release is not None:
        releases = [r for r in releases if r["release"] == args.release]
    print(
        f"{'RELEASE':<16} {'SERVED':>6} {'OLDER':>6} {'APPLIED':>7} {'FAILED':>6}"
        f" {'ROLLED':>6} {'RATE':>6}  POLICY / HALT"
    )
    for health in releases:
        print(_status_line(health))
    return 0


def _status_line(health: dict[str, Any]) -> str:
    policy = health.get("policy")
    mark = describe_policy(policy) if policy else "-"
    halt = health.get("halt")
    if halt is not None:
        mark += f"  HALTED {halt['at']} by {halt['by']}: {halt['reason']}"
    return (
        f"{health['release']:<16} {health['served']:>6} {health['older']:>6}"
        f" {health['applied']:>7} {health['failed']:>6} {health['rolledBack']:>6}"
        f" {health['failureRate']:>6.0%}  {mark}"
    )


def run_change(args: argparse.Namespace) -> int:
    with open_target(args) as target:
        answer = target.change_rollout(args.channel, args.release, args.rollout_change, args.reason)
    done = "halted" if args.rollout_change == HALT else "resumed"
    if answer["changed"]:
        print(f"{done} release {answer['release']} of channel {args.channel}")
    else:
        print(f"release {answer['release']} of channel {args.channel} was {done} already")
    print(_status_line(answer))
    return 0


def describe_policy(policy: dict[str, Any]) -> str:
    if "failures" in policy:
        return f"halt at {policy['failures']} failures"
    return f"halt at {policy['failureRate']:.0%} failures of {policy['minReports']}+ reports"


def describe_numbers(numbers: dict[str, Any]) -> str:
    """A halt's numbers on one line, for `deployd history`."""
    text = (
        f"served {numbers.get('served', 0)}, applied {numbers.get('applied', 0)},"
        f" failed {numbers.get('failed', 0)}, rolled back {numbers.get('rolledBack', 0)},"
        f" rate {numbers.get('failureRate', 0):.0%}"
    )
    policy = numbers.get("policy")
    return f"{text}; {describe_policy(policy)}" if policy else text
