"""Rollouts over HTTP: instances report their reconciles; publishers watch, halt and resume.

`POST /api/v1/operator/report` takes a license, as the spec endpoint does, and answers from the
worker's memory: the report is checked against the channel the worker holds and queued for the
background flush (202), never written to the store on the request path. The rollout endpoints
need a publisher token: any valid one to read, the ``rollout`` scope on the channel to halt or
resume.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request

from deployd.api.auth import license_from_request
from deployd.api.publishing import require_publisher
from deployd.api.request import RefusedJSON, load_json
from deployd.errors import (
    BadRequestError,
    LicenseError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
)
from deployd.fleet.instances import instance_key
from deployd.protocol import CHANNELS_PATH, REPORT_PATH
from deployd.publishers import ROLLOUT
from deployd.rollouts.halts import Rollouts
from deployd.rollouts.queue import ReportQueue
from deployd.rollouts.records import APPLIED
from deployd.rollouts.reports import MAX_REPORT_BYTES, OutOfWindowError, check_report
from deployd.server.services import Services, services

bp = Blueprint("rollouts", __name__)

ROLLOUT_PATH = CHANNELS_PATH + "/<name>/rollout"
MAX_REASON_LENGTH = 1000


class ReportsQueueFullError(RateLimitedError):
    """The worker's report queue is full: the caller retries later."""

    code = "reports_queue_full"


@bp.post(REPORT_PATH)
def report() -> Response:
    deployd = services()
    deployd.limit_address(request.remote_addr)
    unverified = license_from_request(request)
    if unverified is None:
        raise LicenseError(
            "missing", "a license is required: send HTTP Basic auth with user 'license'"
        )
    license = deployd.verify_license(unverified)
    deployd.limit_license(license)
    payload = _small_json_body()
    name = payload.get("channel") or license.channel
    if not isinstance(name, str):
        raise BadRequestError("'channel' must be a channel name")
    if not license.may_read(name):
        raise LicenseError("channel_not_allowed", f"this license may not report on {name!r}")
    found = deployd.state.channel(name)
    if found is None:
        raise NotFoundError(f"no channel named {name!r}", code="unknown_channel")
    queue = _queue(deployd)
    try:
        checked = check_report(payload, channel=found[1], subject=license.customer)
    except OutOfWindowError as e:
        queue.out_of_window += 1
        response = jsonify(
            {"accepted": False, "instance": payload["instance"], "reason": e.message}
        )
        response.status_code = 202
        return response
    # Counted by the fleet's key of the instance (the id is the customer's own: two customers
    # may pick the same one), the key its polls are recorded under.
    key = instance_key(license.customer, checked.instance)
    if not queue.offer(replace(checked, instance=key)):
        raise ReportsQueueFullError(
            "this server's report queue is full; send the report again later", retry_after=5
        )
    if checked.outcome == APPLIED and deployd.fleet is not None:
        # What the instance runs now: the current release of its next polls (required steps).
        deployd.fleet.record_report_release(key, checked.release)
    response = jsonify({"accepted": True, "instance": checked.instance})
    response.status_code = 202
    return response


def _small_json_body() -> dict[str, Any]:
    length = request.content_length
    if length is not None and length > MAX_REPORT_BYTES:
        raise PayloadTooLargeError(f"a report is at most {MAX_REPORT_BYTES} bytes")
    data = request.get_data(cache=False)
    if len(data) > MAX_REPORT_BYTES:
        raise PayloadTooLargeError(f"a report is at most {MAX_REPORT_BYTES} bytes")
    try:
        payload = load_json(data)
    except (RefusedJSON, ValueError, RecursionError) as e:
        raise BadRequestError("the body must be a JSON object (a report)") from e
    if not isinstance(payload, dict):
        raise BadRequestError("the body must be a JSON object (a report)")
    return payload


def _queue(deployd: Services) -> ReportQueue:
    assert deployd.reports is not None
    return deployd.reports


def _rollouts() -> Rollouts:
    found = services().rollouts
    assert found is not None
    return found


@bp.get(ROLLOUT_PATH)
def rollout_status(name: str) -> Response:
    require_publisher()
    health = _rollouts().health(name)
    return jsonify({"channel": name, "releases": [h.to_dict() for h in health]})


@bp.post(ROLLOUT_PATH + "/releases/<version>/halt")
def halt(name: str, version: str) -> Response:
    return _change(name, version, halt=True)


@bp.post(ROLLOUT_PATH + "/releases/<version>/resume")
def resume(name: str, version: str) -> Response:
    return _change(name, version, halt=False)


def _change(name: str, version: str, *, halt: bool) -> Response:
    publisher = require_publisher(ROLLOUT, name)
    reason = _reason()
    rollouts = _rollouts()
    change = rollouts.halt if halt else rollouts.resume
    changed = change(name, version, by=publisher.name, reason=reason)
    services().state.refresh(force=True)  # this worker at once, the others on their next round
    health = rollouts.release_health(name, version)
    return jsonify({"channel": name, "changed": changed, **health.to_dict()})


def _reason() -> str:
    if not request.get_data():
        return ""
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise BadRequestError('the body must be a JSON object like {"reason": "..."}')
    reason = payload.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH:
        raise BadRequestError(
            f"'reason' must be a string of at most {MAX_REASON_LENGTH} characters"
        )
    return reason


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
