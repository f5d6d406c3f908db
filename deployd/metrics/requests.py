"""Counting every HTTP request, whichever way in answers it (deployd.api.fastpath or Flask).

`RequestCounter` runs the whole WSGI app (deployd.server.app calls it around the fast path, which
stays the app's outermost layer): it notes the status the app starts its response with and the
time the app took, under the route the request matched. Flask records the route
template (`note_route`, a before-request hook); the fast path records its exact path (`ROUTE_KEY`).
A request no route matched is counted under ``unmatched``, so a scan of random paths adds no
labels. The per-request cost is two clock reads, one dict lookup (the label children of each
(route, status) are bound once and kept) and two additions to the process's tally
(deployd.metrics.tally), which the background round adds to the Prometheus values.
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
    """Flask before-request hook: remember the matched rule for `CountingMiddleware`."""
    rule = request.url_rule
    request.environ[ROUTE_KEY] = rule.rule if rule is not None else UNMATCHED


class RequestCounter:
    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self._children: dict[tuple[str, str], _Children] = {}

    def __call__(
        self, app: WSGIApp, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        """`app`'s answer to the request, counted."""
        started = self.clock()
        statuses: list[str] = []

        def noting_start_response(status: str, *args: Any) -> Any:
            statuses.append(status)
            return start_response(status, *args)

        try:
            return app(environ, noting_start_response)
        finally:
            status = statuses[-1][:3] if statuses else "500"
            counter, duration = self._bound(environ.get(ROUTE_KEY, UNMATCHED), status)
            TALLY.inc(counter)
            TALLY.observe(duration, self.clock() - started)

    def _bound(self, route: str, status: str) -> _Children:
        key = (route, status)
        children = self._children.get(key)
        if children is None:
            children = (HTTP_REQUESTS.labels(route, status), HTTP_DURATION.labels(route))
            self._children[key] = children
        return children
