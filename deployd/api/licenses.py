"""License checks for support and billing tools: always 200, the verdict in the body."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, jsonify, request

from deployd.errors import BadRequestError, LicenseError
from deployd.services import services

bp = Blueprint("licenses", __name__)


@bp.post("/api/v1/licenses/validate")
def validate() -> Response:
    services().limit_address(request.remote_addr)
    try:
        payload = request.get_json(silent=True)
    except RecursionError:
        # `silent` covers invalid JSON, not JSON nested deeper than the parser's recursion limit.
        payload = None
    if not isinstance(payload, dict):
        raise BadRequestError('body must be a JSON object like {"license": "<token>"}')
    unverified_license = payload.get("license")
    if unverified_license is not None and not isinstance(unverified_license, str):
        raise BadRequestError("'license' must be a string")
    try:
        if not unverified_license:
            raise LicenseError("missing", "no license given")
        license = services().verify_license(unverified_license)
    except LicenseError as e:
        return jsonify({"valid": False, "code": e.code, "message": e.message, "claims": None})
    return jsonify(
        {"valid": True, "code": "valid", "message": "license is valid", "claims": license.claims}
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
