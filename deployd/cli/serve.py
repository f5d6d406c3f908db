"""`deployd serve`: the server for development, on the embedded store unless REDIS_URL is set."""

from __future__ import annotations

import argparse
import sys

from deployd.config import config_error_line, settings_from_env
from deployd.errors import ConfigError
from deployd.logs import configure_logging


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the server for development (production: gunicorn, see the Procfile)",
        description="Run the server with gunicorn on the embedded store seeded from channels/ "
        "(or Redis when REDIS_URL is set).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to bind (default 8000)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gunicorn workers (default 1: the embedded store lives in one process)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    from deployd.app import create_app

    try:
        settings = settings_from_env()
        configure_logging(settings.log_level)
        if settings.embedded and args.workers > 1:
            print(
                "deployd: error: the embedded store lives in one process; set REDIS_URL to run"
                " several workers",
                file=sys.stderr,
            )
            return 2
        # Built before gunicorn starts, so a configuration error is one line, before any worker.
        app = create_app(settings)
    except ConfigError as e:
        print(config_error_line(e), file=sys.stderr)
        return 1

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{args.host}:{args.port}")
            self.cfg.set("workers", args.workers)
            self.cfg.set("worker_class", "gthread")
            self.cfg.set("threads", 4)
            self.cfg.set("accesslog", "-")
            self.cfg.set("limit_request_field_size", 65536)

        def load(self):
            return app

    print(
        f"deployd serving {'embedded store' if settings.embedded else 'Redis'} on"
        f" http://{args.host}:{args.port}",
        file=sys.stderr,
    )
    Server().run()
    return 0
