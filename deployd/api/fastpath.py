"""A plain-WSGI way in, in front of Flask, for the requests a polling fleet repeats all day.

For every request Flask builds a request context, a routed request object and a response object;
for a worker answering the same polls thousands of times a second from memory, that machinery
costs more than the answer itself. `FastPath` hands the requests of a few hot paths to small
functions that read the WSGI environ directly. Such a function answers only when it can answer
from memory with a success, and returns None for everything else (a license not verified yet, any
refusal, anything unusual), or raises a DeploydError; then Flask handles the request from scratch,
with every check and every error response. A fast function changes nothing before it has decided
to answer (rate limits are counted last), so a request handed on is handled exactly as if the
fast path had never seen it. tests/api/test_fast_path.py holds both ways to the same answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from deployd.errors import DeploydError
from deployd.logs import request_id
from deployd.metrics.requests import RequestCounter
from deployd.server.services import Services

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass(frozen=True)
class Answer:
    """A complete answer but for the headers every response carries (added by FastPath)."""

    status: str  # as in a WSGI status line: "200 OK"
    headers: list[tuple[str, str]]
    body: bytes


# (services, WSGI environ) -> the answer, or None (or a DeploydError) to let Flask answer.
FastHandler = Callable[[Services, dict[str, Any]], Answer | None]


class FastPath:
    """WSGI middleware: `handlers` by exact PATH_INFO first, `app` (Flask) for the rest. With a
    `counter` (metrics on), every request is counted, answered by either way."""

    def __init__(
        self,
        app: WSGIApp,
        deployd: Services,
        handlers: Mapping[str, FastHandler],
        counter: RequestCounter | None = None,
    ):
        self.app = app
        self.deployd = deployd
        self.handlers = dict(handlers)
        self.counter = counter

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        counter = self.counter
        started = counter.clock() if counter is not None else 0.0
        path = environ.get("PATH_INFO", "")
        handler = self.handlers.get(path)
        answer = None
        if handler is not None:
            try:
                answer = handler(self.deployd, environ)
            except DeploydError:
                answer = None
            except Exception:
                # Flask answers instead, and logs the failure again if it is not the fast path's.
                logger.exception("fast path failed; Flask answers the request")
                answer = None
        if answer is None:
            if counter is None:
                return self.app(environ, start_response)
            return counter.wrap(self.app, environ, start_response, started)
        headers = [
            *answer.headers,
            # What deployd.server.app's request hooks add to every Flask response.
            ("X-Request-Id", request_id(environ.get("HTTP_X_REQUEST_ID"))),
            ("X-Content-Type-Options", "nosniff"),
        ]
        if not any(name == "Cache-Control" for name, _ in answer.headers):
            headers.append(("Cache-Control", "no-store"))
        start_response(answer.status, headers)
        if counter is not None:
            counter.count(path, answer.status[:3], started)  # counted under its exact path
        return [answer.body]


def content_length(environ: Mapping[str, Any]) -> int | None:
    """The request's Content-Length: 0 when it has none, None when it is not a plain number."""
    value = environ.get("CONTENT_LENGTH") or "0"
    return int(value) if value.isdigit() else None
