"""The metrics on a port of their own (DEPLOYD_METRICS_PORT), served by the gunicorn master.

The master reads every worker's values from the multiprocess directory (deployd.metrics.multiproc),
so a scrape waits on no worker, and the API's port has no `/metrics` route. Only `GET /metrics` is
answered; anything else is a JSON 404 or 405, a missing or wrong token (DEPLOYD_METRICS_TOKEN,
when set) a JSON 401. One request at a time, each given `REQUEST_TIMEOUT_SECONDS` to arrive.
Imports nothing of deployd's server, so the master stays free of redis-py and Flask.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from deployd.errors import DeploydError, MetricsAuthError
from deployd.metrics.access import check_token
from deployd.metrics.multiproc import exposition
from deployd.protocol import METRICS_PATH

REQUEST_TIMEOUT_SECONDS = 5.0
StartResponse = Callable[..., Any]


class _QuietHandler(WSGIRequestHandler):
    timeout = REQUEST_TIMEOUT_SECONDS  # a client that does not send its request is dropped

    def log_message(self, format: str, *args: Any) -> None:
        """Nothing: scrapes are not worth a log line each (and headers are never logged)."""


class MetricsServer:
    def __init__(self, host: str, port: int, token: str | None) -> None:
        self.token = token
        self._server: WSGIServer = make_server(host, port, self.app, handler_class=_QuietHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="deployd-metrics", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != METRICS_PATH:
            return _error(start_response, "404 Not Found", "not_found", "no such path")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _error(
                start_response,
                "405 Method Not Allowed",
                "method_not_allowed",
                "only GET reads the metrics",
                [("Allow", "GET, HEAD")],
            )
        try:
            check_token(self.token, environ.get("HTTP_AUTHORIZATION"))
        except MetricsAuthError as e:
            return _error(
                start_response,
                "401 Unauthorized",
                e.code,
                e.message,
                [("WWW-Authenticate", 'Bearer realm="deployd-metrics"')],
            )
        body = exposition()
        start_response(
            "200 OK",
            [("Content-Type", CONTENT_TYPE_LATEST), ("Content-Length", str(len(body)))],
        )
        return [body]


def _error(
    start_response: StartResponse,
    status: str,
    code: str,
    message: str,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    body = json.dumps(DeploydError(message, code=code).to_dict()).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *(headers or []),
        ],
    )
    return [body]
