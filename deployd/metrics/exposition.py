"""`GET /metrics` on the API's port: the Prometheus text exposition of every worker of this server
(deployd.metrics.multiproc). The route exists only when deployd.metrics.access says the API's port
serves the metrics (not with DEPLOYD_METRICS_PORT: deployd.metrics.standalone serves them there).
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, request
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from deployd.metrics.access import check_token, served_on_api_port
from deployd.metrics.multiproc import exposition
from deployd.protocol import METRICS_PATH
from deployd.server.services import services
from deployd.server.settings import Settings

bp = Blueprint("metrics", __name__)


@bp.get(METRICS_PATH)
def metrics() -> Response:
    check_token(services().settings.metrics_token, request.headers.get("Authorization"))
    return Response(exposition(), content_type=CONTENT_TYPE_LATEST)


def init_app(app: Flask, settings: Settings) -> None:
    if served_on_api_port(settings):
        app.register_blueprint(bp)
