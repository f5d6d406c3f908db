"""`deployd agent --console HOST:PORT` and `deployd agent console-password`: the system console's
options, its password, and the agent's loop run with the console beside it."""

from __future__ import annotations

import argparse
import getpass
import logging
import signal
import sys
from pathlib import Path

from deployd.agentconsole.app import ConsoleContext, create_console_app
from deployd.agentconsole.control import AgentControl
from deployd.agentconsole.password import PasswordFile, check_new_password
from deployd.agentconsole.server import ConsoleAddress, ConsoleServer, check_bind
from deployd.agentconsole.uservalues import UserValuesFile
from deployd.cli import Subparsers
from deployd.client import Poller, Reconciler
from deployd.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = ".deployd/agent"


def console_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("system console")
    group.add_argument(
        "--console",
        metavar="HOST:PORT",
        help="serve the system console (status, values, releases; password-protected) on"
        " HOST:PORT, e.g. 127.0.0.1:8700; a non-loopback HOST needs TLS",
    )
    group.add_argument(
        "--console-cert", metavar="FILE", help="TLS certificate (PEM) of the console"
    )
    group.add_argument("--console-key", metavar="FILE", help="TLS private key (PEM) of the console")
    group.add_argument(
        "--console-allow-plain-http",
        action="store_true",
        help="allow a non-loopback --console without TLS (only behind a TLS proxy)",
    )


def register_password_command(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "console-password",
        help="set the system console's password",
        description="Set a new password for the system console of the agent whose cache"
        " directory is given (asked twice on a terminal, else read from the first line of"
        " standard input). Only a salted scrypt hash is stored; signed-in sessions end.",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=DEFAULT_CACHE_DIR,
        help=f"the agent's cache directory (default {DEFAULT_CACHE_DIR})",
    )
    parser.set_defaults(func=set_password)


def set_password(args: argparse.Namespace) -> int:
    password = _read_new_password()
    PasswordFile(Path(args.cache_dir)).save(password)
    print(f"the system console password of {args.cache_dir} is changed")
    return 0


def _read_new_password() -> str:
    if sys.stdin.isatty():
        password = getpass.getpass("New console password: ")
        check_new_password(password)
        if getpass.getpass("Again: ") != password:
            raise ConfigError("the two passwords differ; nothing changed")
        return password
    password = sys.stdin.readline().rstrip("\r\n")
    check_new_password(password)
    return password


def run_with_console(
    args: argparse.Namespace, poller: Poller, reconciler: Reconciler, values_file: UserValuesFile
) -> None:
    """Serve the console in a thread and run the agent's loop in this one until SIGTERM/SIGINT."""
    address = ConsoleAddress.parse(args.console)
    tls = bool(args.console_cert or args.console_key)
    check_bind(address, tls=tls, allow_plain_http=args.console_allow_plain_http)
    passwords = PasswordFile(Path(args.cache_dir))
    control = AgentControl(poller, reconciler)
    context = ConsoleContext(
        control=control,
        values_file=values_file,
        passwords=passwords,
        allowed_hosts=address.allowed_hosts,
    )
    server = ConsoleServer(
        create_console_app(context),
        address,
        cert=Path(args.console_cert) if args.console_cert else None,
        key=Path(args.console_key) if args.console_key else None,
    )
    first_password = passwords.ensure()
    if first_password is not None:
        # Printed once, to the terminal only (never to the log); only its hash is kept.
        print(
            f"system console password (shown once; change it with `deployd agent"
            f" console-password --cache-dir {args.cache_dir}`): {first_password}",
            flush=True,
        )
    server.start()
    logger.info("system console at %s", server.url)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: control.stop())
    try:
        control.run()
    finally:
        server.stop()
        if context.catalog is not None:
            context.catalog.close()
