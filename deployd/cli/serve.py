"""`deployd serve`: the server for development, on the embedded store unless REDIS_URL is set."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from typing import TYPE_CHECKING

from deployd.cli import Subparsers
from deployd.logs import configure_logging
from deployd.server.settings import Settings, exit_on_config_error, settings_from_env

if TYPE_CHECKING:
    from flask import Flask

# As in gunicorn.conf.py (docs/operating.md, "Slow clients"): gevent workers, so a connection
# costs a greenlet rather than a thread, and a 5 s deadline for a request head.
WORKER_CLASS = "gevent"
WORKER_CONNECTIONS = 1000
KEEPALIVE_SECONDS = 5
# gunicorn's exit status for a worker that could not load the app: the master stops.
APP_LOAD_ERROR = 4
DEFAULT_PORT = 8000
SERVERS = ("gunicorn", "granian")


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the server for development (production: gunicorn or granian, see the Procfile)",
        description="Run the server with gunicorn (or granian) on the embedded store seeded from "
        "channels/ (or Redis when REDIS_URL is set).",
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT") or DEFAULT_PORT),
        help=f"port to bind (default: $PORT, else {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default 1: the embedded store lives in one process)",
    )
    parser.add_argument(
        "--server",
        choices=SERVERS,
        default="gunicorn",
        help="HTTP server: gunicorn (gevent workers, the default) or granian (deployd/server/"
        "granian.py; needs the granian extra)",
    )


def run(args: argparse.Namespace) -> int:
    from deployd.server.services import check_configuration

    with exit_on_config_error(1):
        settings = settings_from_env()
        # Checked here, once, so a mistake is one line before any worker starts.
        check_configuration(settings)
    if settings.embedded and args.workers > 1:
        print(
            "deployd: error: the embedded store lives in one process; set REDIS_URL to run"
            " several workers",
            file=sys.stderr,
        )
        return 2
    if args.server == "granian" and importlib.util.find_spec("granian") is None:
        print(
            "deployd: error: granian is not installed: pip install 'deployd[granian]'",
            file=sys.stderr,
        )
        return 2
    argv = [f"--host={args.host}", f"--port={args.port}", f"--workers={args.workers}"]
    if args.server == "granian":
        # The same launcher as the Procfile's web-granian line; no shutdown drain unless asked
        # for, as under gunicorn here.
        os.environ.setdefault("DEPLOYD_DRAIN_SECONDS", "0")
        os.execv(sys.executable, [sys.executable, "-m", "deployd.server.granian", *argv])
    # The `deployd` command has imported redis-py, requests and the rest of deployd by now. A
    # fresh interpreter runs gunicorn instead, so gevent patches each worker before it imports
    # them, exactly as under the production config.
    os.execv(sys.executable, [sys.executable, "-m", "deployd.cli.serve", *argv])


def serve_forever(args: argparse.Namespace) -> None:
    """Run gunicorn in this process (the master); each worker builds the app for itself."""
    from gunicorn.app.base import BaseApplication

    settings = settings_from_env()
    configure_logging(settings.log_level)

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("worker_class", WORKER_CLASS)
            self.cfg.set("worker_connections", WORKER_CONNECTIONS)
            self.cfg.set("keepalive", KEEPALIVE_SECONDS)
            self.cfg.set("accesslog", "-")
            self.cfg.set("limit_request_field_size", 65536)
            self.cfg.set("when_ready", announce)

        # types-gunicorn wants an app taking any MutableMapping environ; Flask's takes a dict.
        def load(self) -> Flask:  # type: ignore[override]
            # Runs in the worker once gevent has patched it, so the app's locks, threads and
            # Redis connections are cooperative; built in the master, they would not be.
            return load_app(settings)

    def announce(server: object) -> None:
        # gunicorn calls this once it has bound the address: only then is the server there.
        print(
            f"deployd serving {'embedded store' if settings.embedded else 'Redis'} on"
            f" http://{args.host}:{args.port}",
            file=sys.stderr,
            flush=True,
        )

    Server().run()


def load_app(settings: Settings) -> Flask:
    """The app, built in a worker; a configuration error stops the server with its message."""
    from deployd.server.app import create_app

    with exit_on_config_error(APP_LOAD_ERROR):
        return create_app(settings)


if __name__ == "__main__":
    main_parser = argparse.ArgumentParser(prog="deployd serve")
    add_arguments(main_parser)
    serve_forever(main_parser.parse_args())
