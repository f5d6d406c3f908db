"""`deployd config check`: the server's configuration checked without starting it."""

from __future__ import annotations

import argparse

from deployd.cli import Subparsers

# gunicorn's exit status for a worker that cannot boot: the master stops (gunicorn.conf.py).
BOOT_ERROR = 3


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "config", help="check the server's configuration (the environment) without starting it"
    )
    actions = parser.add_subparsers(dest="config_action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="check keys, signing key, settings and the Redis URL; connect to nothing",
        description="Check what the server would refuse at start without its store: the license"
        " and signing keys (and the development-key rule), the license settings, the publisher"
        " tokens file and the Redis URL's form. A problem is one line on stderr and exit status"
        f" {BOOT_ERROR}. gunicorn.conf.py runs this once before any worker starts.",
    )
    check.add_argument("--quiet", action="store_true", help="print nothing when all is well")
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    from deployd.server.services import check_configuration_from_env

    check_configuration_from_env(exit_code=BOOT_ERROR)
    if not args.quiet:
        print("configuration ok")
    return 0
