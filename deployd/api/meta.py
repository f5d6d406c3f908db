"""Endpoints for operations and clients: health, readiness, public keys, the API contract."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, jsonify

from deployd.errors import NotFoundError, StoreUnavailableError, StoreUninitializedError
from deployd.services import services

bp = Blueprint("meta", __name__)

OPENAPI_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Response:
    deployd = services()
    try:
        deployd.store.ping()
    except StoreUnavailableError as e:
        raise StoreUnavailableError(f"not ready: {e.message}") from e
    deployd.state.refresh(force=True)
    if deployd.state.uninitialized:
        raise StoreUninitializedError(
            "not ready: the store is not initialised (Redis lost its data or is new); run"
            " `deployd store restore FILE` or `deployd store init`"
        )
    return jsonify({"status": "ready", "channels": len(deployd.state.channel_names())})


@bp.get("/.well-known/jwks.json")
def jwks() -> Response:
    response = jsonify(services().jwks())
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/openapi.yaml")
def openapi() -> Response:
    try:
        text = OPENAPI_PATH.read_bytes()
    except OSError as e:
        raise NotFoundError("openapi.yaml is not installed with this build") from e
    return Response(text, content_type="application/yaml")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
