"""`deployd customer show|set|clear`: the customer records layered over license claims
(deployd.customers), against a server or its Redis, like the other publisher commands."""

from __future__ import annotations

import argparse
from typing import Any

from deployd.cli import Subparsers
from deployd.cli.targets import add_target_arguments, open_target
from deployd.customers.records import CHANNEL, EXTRA_CHANNELS, HOLD, NOTES, PINNED_RELEASE
from deployd.errors import BadRequestError

# --field NAME of `clear` -> the record's JSON field.
CLEARABLE = {
    "channel": CHANNEL,
    "extra-channels": EXTRA_CHANNELS,
    "pin": PINNED_RELEASE,
    "hold": HOLD,
    "notes": NOTES,
}


def register(subparsers: Subparsers) -> None:
    """Add `customer show|set|clear` to the `deployd` parser."""
    customer = subparsers.add_parser(
        "customer",
        help="show or change a customer's record (channel, pin, hold...) over its license",
        description="A customer record is kept on the server per license subject (the `sub`"
        " claim) and layered over the license without re-issuing it: an assigned channel, extra"
        " channels it may read, a pinned release, a hold on the release it runs, notes.",
    )
    commands = customer.add_subparsers(dest="customer_command", metavar="COMMAND", required=True)

    show = commands.add_parser("show", help="a customer's record and what it changes")
    show.add_argument("subject", metavar="SUB")
    add_target_arguments(show, writes=False)
    show.set_defaults(func=run_show)

    change = commands.add_parser(
        "set",
        help="set fields of a customer's record (the others stay)",
        description="Set the fields given; the others keep their values.",
    )
    change.add_argument("subject", metavar="SUB")
    change.add_argument("--channel", metavar="CHANNEL", help="serve this channel by default")
    change.add_argument(
        "--extra-channel",
        action="append",
        dest="extra_channels",
        metavar="CHANNEL",
        help="a channel it may read besides the license's (repeatable; replaces the list)",
    )
    change.add_argument("--pin", metavar="VERSION", help="serve exactly this release")
    change.add_argument(
        "--hold",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep serving the release it runs (--no-hold ends the hold)",
    )
    change.add_argument("--notes", metavar="TEXT", help="free text for people")
    add_target_arguments(change)
    change.set_defaults(func=run_set)

    clear = commands.add_parser(
        "clear",
        help="clear fields of a customer's record, or the whole record",
        description="Without --field, delete the record: the license applies as it is.",
    )
    clear.add_argument("subject", metavar="SUB")
    clear.add_argument(
        "--field",
        action="append",
        dest="fields",
        choices=sorted(CLEARABLE),
        metavar="FIELD",
        help=f"a field to clear (repeatable): {', '.join(sorted(CLEARABLE))}",
    )
    add_target_arguments(clear)
    clear.set_defaults(func=run_clear)


def run_show(args: argparse.Namespace) -> int:
    with open_target(args) as target:
        print(describe(target.customer(args.subject)))
    return 0


def run_set(args: argparse.Namespace) -> int:
    values: dict[str, Any] = {}
    for option, field in (
        (args.channel, CHANNEL),
        (args.extra_channels, EXTRA_CHANNELS),
        (args.pin, PINNED_RELEASE),
        (args.hold, HOLD),
        (args.notes, NOTES),
    ):
        if option is not None:
            values[field] = option
    if not values:
        raise BadRequestError("give at least one field to set (deployd customer set --help)")
    with open_target(args) as target:
        print(describe(target.change_customer(args.subject, values)))
    return 0


def run_clear(args: argparse.Namespace) -> int:
    with open_target(args) as target:
        if args.fields:
            answer = target.change_customer(args.subject, {CLEARABLE[f]: None for f in args.fields})
        else:
            answer = target.delete_customer(args.subject)
    print(describe(answer))
    return 0


def describe(answer: dict[str, Any]) -> str:
    """A customer answer (`GET /api/v1/customers/<sub>`) as lines for people."""
    subject, record = answer["subject"], answer["record"]
    if record is None:
        return f"customer {subject}: no record; the license applies as it is"
    lines = [f"customer {subject} (record version {record['version']})"]
    rows = [
        ("channel", record[CHANNEL] or "the license's"),
        ("extra channels", ", ".join(record[EXTRA_CHANNELS]) or "none"),
        ("pinned release", record[PINNED_RELEASE] or "none"),
        ("hold", "yes" if record[HOLD] else "no"),
        ("notes", record[NOTES] or "none"),
        ("updated", f"{record['updatedAt']} by {record['updatedBy']}"),
    ]
    lines += [f"  {name:<15} {value}" for name, value in rows]
    lines += [f"  - {sentence}" for sentence in answer["effect"]]
    return "\n".join(lines)
