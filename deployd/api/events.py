"""The event log over HTTP: GET /api/v1/events (filtered, paged) and the webhook delivery
state at GET /api/v1/events/webhooks. Any valid publisher token reads them, as history."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request

from deployd.api.publishing import require_publisher
from deployd.errors import BadRequestError
from deployd.events import EVENT_TYPES, EventQuery, list_events, recording_failures
from deployd.events.log import MAX_PAGE, event_time
from deployd.protocol import EVENTS_PATH
from deployd.server.services import services

bp = Blueprint("events", __name__)

DEFAULT_PAGE = 50
MAX_FILTER_LENGTH = 200


@bp.get(EVENTS_PATH)
def events() -> Response:
    require_publisher()
    query = _query()
    if query.after is not None and query.before is not None:
        raise BadRequestError("give 'after' (oldest first) or 'before' (newest first), not both")
    return jsonify(list_events(services().store, query).to_dict())


@bp.get(EVENTS_PATH + "/webhooks")
def webhooks() -> Response:
    require_publisher()
    deployd = services()
    state = deployd.store.webhook_state()
    deliverer = deployd.webhooks
    body: dict[str, Any] = {
        "configured": deliverer is not None,
        "hosts": [hook.host for hook in deliverer.config.hooks] if deliverer else [],
        "types": sorted(deliverer.config.types) if deliverer else [],
        "cursor": state.cursor,
        "counts": {
            name: state.counts.get(name, 0) for name in ("delivered", "failed", "gave_up", "missed")
        },
        "recordingFailures": recording_failures(),
    }
    return jsonify(body)


def _query() -> EventQuery:
    types = [t for value in request.args.getlist("type") for t in value.split(",") if t]
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown:
        raise BadRequestError(
            f"unknown event type {', '.join(unknown)[:MAX_FILTER_LENGTH]!r}"
            f" (known: {', '.join(EVENT_TYPES)})"
        )
    return EventQuery(
        types=frozenset(types),
        channel=_text("channel"),
        subject=_text("subject"),
        since=_since(),
        after=_number("after", minimum=0),
        before=_number("before", minimum=1),
        limit=_number("limit", minimum=1, maximum=MAX_PAGE) or DEFAULT_PAGE,
    )


def _text(name: str) -> str | None:
    value = request.args.get(name)
    if value is not None and len(value) > MAX_FILTER_LENGTH:
        raise BadRequestError(f"{name!r} is longer than {MAX_FILTER_LENGTH} characters")
    return value or None


def _since() -> str | None:
    """The `since` filter as deployd writes times (events compare as text in that format)."""
    value = _text("since")
    if value is None:
        return None
    try:
        return event_time(value)
    except ValueError as e:
        raise BadRequestError(
            "'since' must be an RFC 3339 time with its offset, like 2026-11-29T14:00:00Z"
        ) from e


def _number(name: str, *, minimum: int, maximum: int | None = None) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise BadRequestError(f"{name!r} must be a whole number")
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
        raise BadRequestError(f"{name!r} must be {bounds}")
    return value


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
