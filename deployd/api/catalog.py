"""Read-only views of channels for people and tools: releases, chart versions, rollout."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request

from deployd.api.auth import license_from_request
from deployd.api.publishing import carries_publisher_token, require_publisher
from deployd.channels import Channel
from deployd.errors import LicenseError, NotFoundError
from deployd.protocol import CHANNELS_PATH
from deployd.server.services import services

bp = Blueprint("channels", __name__)


def _readable_channel_filter() -> Callable[[str], bool]:
    """Who is asking: returns a predicate over channel names they may read."""
    if carries_publisher_token():
        require_publisher()
        return lambda name: True
    unverified_license = license_from_request(request)
    if unverified_license is None:
        raise LicenseError("missing", "a license is required to list channels")
    license = services().verify_license(unverified_license)
    return license.may_read


def _summary(sequence: int, channel: Channel) -> dict[str, Any]:
    return {
        "name": channel.name,
        "description": channel.description,
        "sequence": sequence,
        "newest": channel.newest.version,
        "releaseCount": len(channel.releases),
    }


@bp.get(CHANNELS_PATH)
def list_channels() -> Response:
    may_read = _readable_channel_filter()
    state = services().state
    channels = []
    for name in state.channel_names():
        found = state.channel(name) if may_read(name) else None
        if found is not None:
            channels.append(_summary(*found))
    return jsonify({"channels": channels})


@bp.get(CHANNELS_PATH + "/<name>")
def show_channel(name: str) -> Response:
    may_read = _readable_channel_filter()
    if not may_read(name):
        raise LicenseError("channel_not_allowed", f"this license may not read channel {name!r}")
    found = services().state.channel(name)
    if found is None:
        raise NotFoundError(f"no channel named {name!r}", code="unknown_channel")
    sequence, channel = found
    body = _summary(sequence, channel)
    body["chart"] = channel.chart
    body["releases"] = [
        {
            "version": release.version,
            "chart": release.chart,
            "chartVersion": release.chart.get("version"),
            "required": release.required,
            "rollout": release.rollout,
            "releasedAt": release.released_at,
            "notes": release.notes,
        }
        for release in reversed(channel.releases)
    ]
    return jsonify(body)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
