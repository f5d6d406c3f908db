"""License checks for support and billing tools: always 200, the verdict in the body.

A repeat check of a license this worker has already verified is answered by `fast_validate` on
deployd.api.fastpath's plain-WSGI way in; every other request by the Flask view. Both read the
body with `_license_in` and write the verdict with `verdict_body`.
"""

from __future__ import annotations

import io
import json
from typing import Any

from flask import Blueprint, Flask, Response, request

from deployd.api.fastpath import Answer, content_length
from deployd.api.request import RefusedJSON, load_json
from deployd.errors import BadRequestError, LicenseError
from deployd.protocol import VALIDATE_PATH
from deployd.server.services import Services, services

bp = Blueprint("licenses", __name__)

# The fast path reads bodies up to this size itself (a license is at most 8 KB); Flask the rest.
MAX_FAST_BODY_BYTES = 16_384


@bp.post(VALIDATE_PATH)
def validate() -> Response:
    services().limit_address(request.remote_addr)
    verdict = license_verdict(services(), _license_in(request.get_json(silent=True)))
    return Response(verdict_body(**verdict), mimetype="application/json")


def license_verdict(deployd: Services, unverified_license: str | None) -> dict[str, Any]:
    """The verdict on a license: valid, code, message and claims (the release console shows it).

    A correctly signed license that fails a later check (expired, revoked...) still shows its
    claims, so a support tool can tell whose it is and when it expired.
    """
    try:
        if not unverified_license:
            raise LicenseError("missing", "no license given")
        license = deployd.verify_license(unverified_license)
    except LicenseError as e:
        return {"valid": False, "code": e.code, "message": e.message, "claims": e.claims}
    return {"valid": True, "code": "valid", "message": "license is valid", "claims": license.claims}


def _license_in(payload: Any) -> str | None:
    """The unverified license of a request body; BadRequestError when the body is not usable."""
    if not isinstance(payload, dict):
        raise BadRequestError('body must be a JSON object like {"license": "<token>"}')
    unverified_license = payload.get("license")
    if unverified_license is not None and not isinstance(unverified_license, str):
        raise BadRequestError("'license' must be a string")
    return unverified_license


def verdict_body(*, valid: bool, code: str, message: str, claims: Any) -> bytes:
    """The verdict as the endpoint sends it: compact JSON and a newline, as flask.jsonify writes."""
    verdict = {"valid": valid, "code": code, "message": message, "claims": claims}
    return (json.dumps(verdict, separators=(",", ":")) + "\n").encode()


def fast_validate(deployd: Services, environ: dict[str, Any]) -> Answer | None:
    """The fast path's answer to a check of an already verified license (see
    deployd.api.fastpath), or None when the Flask view must answer."""
    if environ.get("REQUEST_METHOD") != "POST":
        return None
    mimetype = (environ.get("CONTENT_TYPE") or "").partition(";")[0].strip().lower()
    length = content_length(environ)
    if mimetype != "application/json" or not length or length > MAX_FAST_BODY_BYTES:
        return None
    address = environ.get("REMOTE_ADDR")
    if not deployd.address_allowed(address):
        return None
    body = environ["wsgi.input"].read(length)
    # Flask reads the very same bytes if it answers instead.
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    try:
        payload = load_json(body)
    except (ValueError, RecursionError, RefusedJSON):
        return None
    unverified_license = _license_in(payload)
    license = deployd.verifier.lookup(unverified_license) if unverified_license else None
    if license is None:
        return None
    # The answer is decided; counting it is the only change the fast path makes.
    deployd.count_request(address, None)
    verdict = verdict_body(
        valid=True, code="valid", message="license is valid", claims=license.claims
    )
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(verdict)))]
    return Answer("200 OK", headers, verdict)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
