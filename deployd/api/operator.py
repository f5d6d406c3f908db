"""The operator endpoints: the spec of a license's channel, or of one pinned release."""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, request

from deployd.api.auth import license_from_request
from deployd.errors import LicenseError, NotFoundError
from deployd.selection import select_release
from deployd.services import services

bp = Blueprint("operator", __name__)

CURRENT_VERSION_HEADER = "Deployd-Current-Version"


@bp.route("/api/v1/operator/channel", methods=["GET", "POST"])
def channel_spec() -> Response:
    # POST is what older W&B operators send (with their active spec as body, which is ignored).
    return _serve_spec(pinned=None)


@bp.get("/api/v1/operator/channel/release/<release_id>")
def pinned_spec(release_id: str) -> Response:
    return _serve_spec(pinned=release_id)


def _serve_spec(*, pinned: str | None) -> Response:
    deployd = services()
    deployd.limit_address(request.remote_addr)
    asked = request.args.get("channel") or None
    unverified_license = license_from_request(request)
    if unverified_license is None:
        anonymous = deployd.settings.anonymous_channel
        if anonymous is None or asked not in (None, anonymous):
            raise LicenseError(
                "missing",
                "a license is required: send HTTP Basic auth with user 'license' and the license"
                " as password, or 'Authorization: Bearer <license>'",
            )
        name, license_id = anonymous, None
    else:
        license = deployd.verify_license(unverified_license)
        deployd.limit_license(license)
        name = asked or license.channel
        if not license.may_read(name):
            raise LicenseError("channel_not_allowed", f"this license may not read channel {name!r}")
        license_id = license.jti

    found = deployd.state.channel(name)
    if found is None:
        raise NotFoundError(f"no channel named {name!r}", code="unknown_channel")
    sequence, channel = found
    if pinned is not None:
        release = channel.release(pinned)
        if release is None:
            raise NotFoundError(
                f"channel {name!r} has no release {pinned!r}", code="unknown_release"
            )
    else:
        release = select_release(
            channel,
            license_id=license_id,
            current_version=request.headers.get(CURRENT_VERSION_HEADER) or None,
        )

    spec = deployd.specs.get(channel, release, sequence=sequence, now=time.time())
    headers = {
        "ETag": spec.etag,
        "Cache-Control": "private, no-cache",
        "Vary": "Authorization, Deployd-Current-Version",
        "Deployd-Signature": spec.signature,
    }
    if request.if_none_match.contains_weak(spec.etag.strip('"')):
        return Response(status=304, headers=headers)
    return Response(spec.body, status=200, headers=headers, content_type="application/json")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
