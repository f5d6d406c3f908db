"""Endpoints for operations and clients: health, readiness, public keys, the API contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, jsonify

from deployd.errors import NotFoundError
from deployd.protocol import CONTRACT_PATH, HEALTH_PATH, JWKS_PATH, READY_PATH
from deployd.server import draining
from deployd.server.services import services

bp = Blueprint("meta", __name__)

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"


@bp.get(HEALTH_PATH)
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get(READY_PATH)
def readyz() -> Response:
    """Whether to send this worker traffic, from what it holds: never a store round trip, so it
    answers at once while Redis hangs. 503 while shutting down (deployd.server.draining), while the
    background refresh finds the store unreachable, or when its view is older than
    DEPLOYD_READY_MAX_STALENESS seconds; the body always says how old the view is."""
    deployd = services()
    state = deployd.state
    state.first_view()  # only a worker's very first request waits for its first view
    age = state.view_age()
    report: dict[str, Any] = {
        "store": "reachable" if state.store_reachable else "unreachable",
        "viewAgeSeconds": _seconds(age),
        "revocationsAgeSeconds": _seconds(age),
        "channels": len(state.channel_names()),
    }
    if deployd.fleet is not None:
        report["fleet"] = deployd.fleet.report()
    if deployd.reports is not None:
        report["reports"] = deployd.reports.counts()
    if draining.draining():
        return _not_ready("shutting_down", "the server is shutting down", report)
    if not state.store_reachable:
        return _not_ready("store_unavailable", f"not ready: {state.store_error}", report)
    if state.uninitialized:
        return _not_ready(
            "store_uninitialized",
            "not ready: the store is not initialised (Redis lost its data or is new); run"
            " `deployd store restore FILE` or `deployd store init`",
            report,
        )
    limit = deployd.settings.ready_max_staleness
    if age is None or age > limit:
        return _not_ready(
            "view_stale", f"the worker's view of the store is older than {limit:g} s", report
        )
    return jsonify({"status": "ready", **report})


def _seconds(age: float | None) -> float | None:
    return None if age is None else round(age, 3)


def _not_ready(code: str, message: str, report: dict[str, Any]) -> Response:
    status = "shutting_down" if code == "shutting_down" else "not_ready"
    response = jsonify({"error": {"code": code, "message": message}, "status": status, **report})
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    return response


@bp.get(JWKS_PATH)
def jwks() -> Response:
    response = jsonify(services().jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get(CONTRACT_PATH)
def openapi() -> Response:
    try:
        text = OPENAPI_PATH.read_bytes()
    except OSError as e:
        raise NotFoundError("openapi.yaml is not installed with this build") from e
    return Response(text, content_type="application/yaml")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
