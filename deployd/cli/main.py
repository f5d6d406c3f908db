"""Entry point of the `deployd` command."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from deployd import __version__
from deployd.errors import DeploydError

# Each module defines `register(subparsers)`; every parser it adds sets `func(args) -> int`.
COMMAND_MODULES = [
    "deployd.cli.serve",
    "deployd.cli.config",
    "deployd.cli.keys",
    "deployd.cli.licenses",
    "deployd.cli.agent",
    "deployd.cli.verify",
    "deployd.cli.bundle",
    "deployd.cli.channel_files",
    "deployd.cli.publish",
    "deployd.cli.history",
    "deployd.cli.rollout",
    "deployd.cli.publishers",
    "deployd.cli.store",
    "deployd.cli.customers",
    "deployd.cli.events",
    "deployd.cli.fleet",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deployd", description="Release-channel distribution server and operator client."
    )
    parser.add_argument("--version", action="version", version=f"deployd {__version__}")
    subparsers = parser.add_subparsers(dest="deployd_command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.deployd_command is None:
        # Bare `deployd`: the list of commands, not just "arguments are required".
        parser.print_help(sys.stderr)
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below
        return code
    except DeploydError as e:
        print(f"deployd: error: {e.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `deployd history stable | head`: the reader left; stop quietly, as other tools do.
        _silence_stdout()
        return 141


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
