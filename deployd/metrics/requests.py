"""Counting every HTTP request, whichever way in answers it (deployd.api.fastpath or Flask).

The fast path knows its answer's route and status: it calls `RequestCounter.count` once it has
answered. For the rest, `RequestCounter.wrap` runs the Flask app: it notes the status the app
starts its response with and the time the app took, under the route Flask matched (`note_route`,
a before-request hook, records the rule template in the environ). A request no route matched is
counted under ``unmatched``, so a scan of random paths adds no labels.

A count costs two clock reads, one dict lookup (the label children of each (route, status) are
bound once and kept) and one addition to the process's tally (deployd.metrics.tally), which the
background round adds to the Prometheus values.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import request

from deployd.metrics.registry import HTTP_DURATION, HTTP_REQUESTS
from deployd.metrics.tally import TALLY

# Where a request's route template is kept in the WSGI environ.
ROUTE_KEY = "deployd.route"
UNMATCHED = "unmatched"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
_Children = tuple[Any, Any]  # (requests counter child, duration histogram child)


def note_route() -> None:
    """Flask before-request hook: remember the matched rule for `RequestCounter.wrap`."""
    rule = request.url_rule
    request.environ[ROUTE_KEY] = rule.rule if rule is not None else UNMATCHED


class RequestCounter:
    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self._children: dict[tuple[str, str], _Children] = {}

    def count(self, route: str, status: str, started: float) -> None:
        """Count a request to `route` answered with `status` (three digits), begun at `started`
        (a reading of `clock`)."""
        key = (route, status)
        children = self._children.get(key)
        if children is None:
            children = (HTTP_REQUESTS.labels(route, status), HTTP_DURATION.labels(route))
            self._children[key] = children
        TALLY.add(children[0], children[1], self.clock() - started)

    def wrap(
        self, app: WSGIApp, environ: dict[str, Any], start_response: StartResponse, started: float
    ) -> Iterable[bytes]:
        """`app`'s answer to the request, counted."""
        statuses: list[str] = []

        def noting_start_response(status: str, *args: Any) -> Any:
            statuses.append(status)
            return start_response(status, *args)

        try:
            return app(environ, noting_start_response)
        finally:
            status = statuses[-1][:3] if statuses else "500"
            self.count(environ.get(ROUTE_KEY, UNMATCHED), status, started)
