"""deployd under granian (a Rust HTTP server with worker processes): the second server option.

The one place granian is launched from: `deployd serve --server granian`, the Procfile's
`web-granian` line (`python -m deployd.server.granian`), the benchmark and the tests. It reads the
same environment as gunicorn.conf.py (`HOST`, `PORT`, `WEB_CONCURRENCY`, `DEPLOYD_DRAIN_SECONDS`)
and does here what gunicorn's hooks do there:

- the configuration is checked once in the master, before any worker starts: a mistake is one
  `deployd: configuration error: ...` line and exit status 3;
- every worker shares the rate limits (`DEPLOYD_RATE_LIMIT_PROCESSES` defaults to the workers);
- each worker starts its background refresher when it loads the app, not on its first request;
- on SIGTERM the master drains first (deployd/server/draining.py): `/readyz` answers 503
  `shutting_down` in every worker for `DEPLOYD_DRAIN_SECONDS` while requests are still served,
  then granian stops its workers, which finish the requests in flight (killed after 20 s, as
  gunicorn's graceful_timeout);
- a worker that dies is replaced, as under gunicorn;
- a request head must arrive whole within 5 s (granian reads heads in Rust, so a slow client
  costs a socket, never a Python thread), and each request is logged as an access line.

Workers are forked (not spawned), so they inherit the drain mark the master sets.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.server.mp import MPServer

from deployd.server import draining
from deployd.server.settings import exit_on_config_error, settings_from_env

APP = "deployd.wsgi:app"
# As gunicorn's `keepalive` with gevent workers: the deadline for a whole request head.
HEADER_READ_TIMEOUT_MS = 5000
# A whole request head granian reads before it answers 431 itself (an empty body: not deployd's
# JSON). Room for an oversize Authorization header (gunicorn.conf.py's limit_request_field_size,
# 64 KiB) with an ordinary head around it, so the app answers that one with its JSON 431.
MAX_HEAD_BYTES = 65536 + 16384
# The client address, the request line without its query string, status and duration.
ACCESS_LOG_FORMAT = '%(addr)s "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).1fms'
# Exit status of a configuration error found before the workers start (as gunicorn's
# on_starting hook exits).
CONFIG_ERROR = 3
# As gunicorn.conf.py's graceful_timeout: how long a stopping worker may finish its requests.
GRACEFUL_TIMEOUT_SECONDS = 20
DEFAULT_DRAIN_SECONDS = 5.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerOptions:
    host: str
    port: int
    workers: int
    drain_seconds: float
    # Another WSGI app under the same settings (the benchmark's baselines); deployd's when APP.
    app: str = APP


def options_from_env(environ: Mapping[str, str]) -> ServerOptions:
    """The bind address, workers and drain from the variables gunicorn.conf.py reads."""
    return ServerOptions(
        host=environ.get("HOST", "0.0.0.0"),
        port=int(environ.get("PORT", "8000")),
        workers=int(environ.get("WEB_CONCURRENCY") or (os.cpu_count() or 1) * 2),
        drain_seconds=float(environ.get("DEPLOYD_DRAIN_SECONDS", DEFAULT_DRAIN_SECONDS)),
    )


class DeploydGranian(MPServer):
    """granian's server with worker processes, whose master drains on SIGTERM before it stops
    its workers."""

    def __init__(self, options: ServerOptions) -> None:
        super().__init__(
            options.app,
            address=options.host,
            port=options.port,
            interface=Interfaces.WSGI,
            workers=options.workers,
            http=HTTPModes.http1,
            websockets=False,
            http1_settings=HTTP1Settings(
                header_read_timeout=HEADER_READ_TIMEOUT_MS, max_buffer_size=MAX_HEAD_BYTES
            ),
            log_access=True,
            log_access_format=ACCESS_LOG_FORMAT,
            # A worker that dies is replaced, as gunicorn does (granian stops when one crash-loops).
            respawn_failed_workers=True,
            workers_kill_timeout=GRACEFUL_TIMEOUT_SECONDS,
        )
        self._stop_on_term = draining.drain_first(
            self._stop_now, options.drain_seconds, logger.warning
        )

    def signal_handler_interrupt(self, signum: int | None = None, *args: Any) -> None:
        # granian's handler for SIGINT and SIGTERM in the master; only SIGTERM drains.
        if signum == signal.SIGTERM:
            self._stop_on_term()
        else:
            self._stop_now()

    def _stop_now(self) -> None:
        super().signal_handler_interrupt()  # type: ignore[no-untyped-call]


def load_app(target: str) -> Any:
    """Import the WSGI app in a worker and start its background refresher there (gunicorn's
    post_worker_init hook does the same), so each worker reads the store before its first
    request."""
    from deployd.wsgi import app

    deployd = app.extensions.get("deployd")
    if deployd is not None and deployd.refresher is not None:
        deployd.refresher.ensure_running()
    return app


def serve(options: ServerOptions) -> None:
    """Check the configuration, then run granian in this process (the master) until stopped."""
    # Forked workers share the drain mark made in this process (draining.py).
    multiprocessing.set_start_method("fork", force=True)
    server = DeploydGranian(options)
    if options.app != APP:
        server.serve()
        return
    os.environ.setdefault("DEPLOYD_RATE_LIMIT_PROCESSES", str(options.workers))
    from deployd.server.services import check_configuration

    with exit_on_config_error(CONFIG_ERROR):
        check_configuration(settings_from_env())
    server.serve(target_loader=load_app)


def main(argv: list[str] | None = None) -> None:
    defaults = options_from_env(os.environ)
    parser = argparse.ArgumentParser(prog="python -m deployd.server.granian", description=__doc__)
    parser.add_argument("--host", default=defaults.host, help="address to bind ($HOST)")
    parser.add_argument("--port", type=int, default=defaults.port, help="port to bind ($PORT)")
    parser.add_argument(
        "--workers", type=int, default=defaults.workers, help="worker processes ($WEB_CONCURRENCY)"
    )
    parser.add_argument("--app", default=APP, help=f"the WSGI app, module:name (default {APP})")
    args = parser.parse_args(argv)
    serve(ServerOptions(args.host, args.port, args.workers, defaults.drain_seconds, args.app))


if __name__ == "__main__":
    main()
