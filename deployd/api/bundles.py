"""`POST /api/v1/bundles`: an offline bundle for one license (deployd.offline.export).

Needs a publisher token with the `bundles` action (or `admin`), checked before the body is read.
The body names the license and what to bundle; the answer is the bundle itself, a tar.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Flask, Response, request

from deployd.api.publishing import require_publisher
from deployd.errors import BadRequestError
from deployd.licensing.tokens import parse_duration
from deployd.offline.export import DEFAULT_EXPIRES_IN_SECONDS, ExportOrder, export_bundle
from deployd.protocol import BUNDLES_PATH
from deployd.publishers import BUNDLES
from deployd.server.services import services

logger = logging.getLogger(__name__)
bp = Blueprint("bundles", __name__)

BUNDLE_MEDIA_TYPE = "application/x-tar"
_FIELDS = frozenset({"license", "channel", "releases", "releasesSince", "expiresIn"})


@bp.post(BUNDLES_PATH)
def export() -> Response:
    publisher = require_publisher(BUNDLES)
    order = _order(
        request.get_json(silent=True) if request.mimetype == "application/json" else None
    )
    bundle = export_bundle(services(), order, now=time.time())
    manifest = bundle.manifest
    response = Response(bundle.data, mimetype=BUNDLE_MEDIA_TYPE)
    response.headers["Content-Disposition"] = f'attachment; filename="{bundle.filename}"'
    # The customer and what it holds, never the license itself.
    logger.info(
        "publisher %s exported an offline bundle for customer %s: channel %s, sequence %d,"
        " releases %s, expires %s",
        publisher.name,
        manifest.subject,
        manifest.channel,
        manifest.sequence,
        ", ".join(spec.release for spec in manifest.specs),
        manifest.expires,
    )
    return response


def _order(payload: Any) -> ExportOrder:
    """The export the JSON body asks for; BadRequestError naming what is wrong."""
    if not isinstance(payload, dict):
        raise BadRequestError(
            'send a JSON object like {"license": "<license>", "channel": "stable"}'
            " as application/json"
        )
    unknown = sorted(set(payload) - _FIELDS)
    if unknown:
        raise BadRequestError(
            f"unknown field {unknown[0]!r}; the fields are {', '.join(sorted(_FIELDS))}"
        )
    license = payload.get("license")
    if not isinstance(license, str) or not license.strip():
        raise BadRequestError("'license' must be the license the bundle is for")
    releases = payload.get("releases", [])
    if not isinstance(releases, list) or not all(isinstance(r, str) and r for r in releases):
        raise BadRequestError("'releases' must be a list of release ids")
    channel, since = payload.get("channel"), payload.get("releasesSince")
    for name, value in (("channel", channel), ("releasesSince", since)):
        if value is not None and (not isinstance(value, str) or not value):
            raise BadRequestError(f"'{name}' must be a non-empty string")
    expires_in = payload.get("expiresIn")
    if expires_in is not None and not isinstance(expires_in, str):
        raise BadRequestError("'expiresIn' must be a duration like \"90d\"")
    seconds = (
        parse_duration(expires_in).total_seconds()
        if expires_in is not None
        else DEFAULT_EXPIRES_IN_SECONDS
    )
    return ExportOrder(
        license=license.strip(),
        channel=channel,
        releases=tuple(releases),
        releases_since=since,
        expires_in=seconds,
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
