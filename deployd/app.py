"""The Flask application factory."""

from __future__ import annotations

import logging
import re
import uuid

from flask import Flask, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from deployd.api import channels, errors, licenses, meta, operator
from deployd.config import Settings, settings_from_env
from deployd.errors import PayloadTooLargeError
from deployd.services import build_services
from deployd.store import Store, open_store

logger = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> Flask:
    """Build the server. Without a store, one is opened from `settings` (Redis or embedded)."""
    settings = settings or settings_from_env()
    if store is None:
        store = open_store(settings)
        if settings.embedded:
            from deployd.publishing import seed_store

            seed_store(store, settings.channels_dir)
    app = Flask(__name__)
    if settings.trusted_proxies:
        # Behind N reverse proxies, the client address is the Nth from the right of X-Forwarded-For.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies)  # type: ignore[method-assign]
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False
    app.extensions["deployd"] = build_services(settings, store)
    for module in (errors, meta, operator, licenses, channels):
        module.init_app(app)

    @app.before_request
    def assign_request_id() -> None:
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        if (request.content_length or 0) > settings.max_body_bytes:
            raise PayloadTooLargeError(
                f"request body is larger than {settings.max_body_bytes} bytes"
            )

    @app.after_request
    def common_headers(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app
