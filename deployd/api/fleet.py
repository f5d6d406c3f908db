"""The fleet's read APIs: which instances poll (`GET /api/v1/fleet`) and how a channel's
releases are adopted (`GET /api/v1/channels/<name>/adoption`). Any valid publisher token may
read them, as the history (deployd.api.publishing)."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, jsonify, request

from deployd.api.publishing import require_publisher
from deployd.errors import NotFoundError
from deployd.fleet import queries
from deployd.protocol import ADOPTION_PATH, FLEET_PATH
from deployd.server.services import services

bp = Blueprint("fleet", __name__)


def _releases_of(name: str) -> list[str] | None:
    found = services().state.channel(name)
    return None if found is None else [r.version for r in found[1].releases]


@bp.get(FLEET_PATH)
def fleet() -> Response:
    require_publisher()
    query = queries.fleet_query(request.args, _releases_of)
    return jsonify(queries.fleet_page(services().store, query))


@bp.get(ADOPTION_PATH)
def adoption(name: str) -> Response:
    require_publisher()
    hours = queries.adoption_hours(request.args)
    deployd = services()
    if deployd.state.channel(name) is None:
        raise NotFoundError(f"no channel named {name!r}", code="unknown_channel")
    return jsonify(queries.adoption(deployd.store, name, hours=hours))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
