"""`GET /metrics`: the Prometheus text exposition of every worker of this server.

Under gunicorn (PROMETHEUS_MULTIPROC_DIR set by gunicorn.conf.py) each worker writes its values to
files in that directory and a scrape, whichever worker answers it, reads them all
(prometheus-client's MultiProcessCollector); without it (one process) the values are this
process's own. The route exists only when deployd.metrics.access says the API's port serves them.
"""

from __future__ import annotations

import os

from flask import Blueprint, Flask, Response, request
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from deployd.metrics.access import check_token, served_on_api_port
from deployd.protocol import METRICS_PATH
from deployd.server.services import services
from deployd.server.settings import Settings

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

bp = Blueprint("metrics", __name__)


def exposition() -> bytes:
    """Every metric, over all processes when several write to the multiprocess directory."""
    directory = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if not directory:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


@bp.get(METRICS_PATH)
def metrics() -> Response:
    check_token(services().settings.metrics_token, request.headers.get("Authorization"))
    return Response(exposition(), content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask, settings: Settings) -> None:
    if served_on_api_port(settings):
        app.register_blueprint(bp)
