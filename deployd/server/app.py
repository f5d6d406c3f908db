"""The Flask application factory."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, g, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.middleware.proxy_fix import ProxyFix

from deployd import console
from deployd.api import (
    bundles,
    catalog,
    customers,
    error_handlers,
    events,
    fleet,
    licenses,
    meta,
    operator,
    publishing,
    rollouts,
)
from deployd.api.fastpath import FastPath, StartResponse
from deployd.api.licenses import fast_validate
from deployd.api.operator import fast_spec
from deployd.api.request import DeploydRequest
from deployd.errors import PayloadTooLargeError
from deployd.logs import request_id
from deployd.metrics import exposition
from deployd.metrics.access import metrics_enabled
from deployd.metrics.requests import RequestCounter, note_route
from deployd.protocol import SPEC_PATH, VALIDATE_PATH
from deployd.server.services import build_services
from deployd.server.settings import Settings, settings_from_env
from deployd.store import Store, open_store

logger = logging.getLogger(__name__)

# How long the background refresh and rate-limit sync wait for Redis (connect, then each reply).
BACKGROUND_STORE_TIMEOUT_SECONDS = 1.0


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> Flask:
    """Build the server. Without a store, one is opened from `settings` (Redis or embedded)."""
    settings = settings or settings_from_env()
    worker_store = store
    if store is None:
        store = open_store(settings)
        if settings.embedded:
            from deployd.publishing import seed_store

            seed_store(store, settings.channels_dir)
            worker_store = store
        else:
            # The background refresh's own connections, on short timeouts
            # (deployd.server.refresher).
            worker_store = open_store(settings, timeout=BACKGROUND_STORE_TIMEOUT_SECONDS)
    app = Flask(__name__)
    app.request_class = DeploydRequest
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # Documents keep the order the code builds them in.
    json_provider = DefaultJSONProvider(app)
    json_provider.sort_keys = False
    app.json = json_provider
    deployd = app.extensions["deployd"] = build_services(settings, store, worker_store=worker_store)
    modules = (error_handlers, meta, operator, licenses, catalog, publishing, customers, events)
    for module in (*modules, fleet, rollouts, bundles):
        module.init_app(app)
    exposition.init_app(app, settings)
    console.init_app(app, publishing.authenticator_of(app))
    # Repeat polls are answered from memory before Flask (deployd/api/fastpath.py).
    fast_handlers = {SPEC_PATH: fast_spec, VALIDATE_PATH: fast_validate}
    # With metrics on, every request is counted, the fast path's and Flask's (deployd.metrics).
    counter = RequestCounter() if metrics_enabled(settings) else None
    app.wsgi_app = _ServingFastPath(app.wsgi_app, deployd, fast_handlers, counter)  # type: ignore[method-assign]
    if counter is not None:
        app.before_request(note_route)
    if settings.trusted_proxies:
        # Behind N reverse proxies, the client address is the Nth from the right of X-Forwarded-For.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]

    @app.before_request
    def assign_request_id() -> None:
        g.request_id = request_id(request.headers.get("X-Request-Id"))
        if (request.content_length or 0) > settings.max_body_bytes:
            raise PayloadTooLargeError(
                f"request body is larger than {settings.max_body_bytes} bytes"
            )

    @app.after_request
    def common_headers(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id", "")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app


class _ServingFastPath(FastPath):
    """FastPath that first makes sure the background refresher runs in the process serving (a
    gunicorn worker, after the fork)."""

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self.deployd.refresher is not None:
            self.deployd.refresher.ensure_running()
        return super().__call__(environ, start_response)
