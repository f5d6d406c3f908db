"""What publishers do over HTTP: publish a channel, read its history, roll back, promote a
release, revoke a license. Every endpoint here needs a publisher token (`deployd.publishers`);
a license never grants any of it. Reading needs any valid token; each change also needs the
token's scopes to allow that action on that channel, checked by `require_publisher` before the
body is read.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from deployd.api.auth import authorization_header, bearer_token
from deployd.api.request import RefusedJSON, load_json
from deployd.channels import DOCUMENT_FIELD, Channel, channel_from_document, parse_channel_text
from deployd.errors import (
    BadRequestError,
    ChannelValidationError,
    DeploydError,
    NotFoundError,
    Problem,
)
from deployd.licensing.revocation import revoke_license
from deployd.protocol import CHANNELS_PATH, LICENSES_PATH
from deployd.publishers import (
    PROMOTE,
    PUBLISH,
    REVOKE,
    ROLLBACK,
    Publisher,
    PublisherAuthenticator,
    is_publisher_token,
    require_scope,
    static_publishers,
)
from deployd.publishing import (
    PublishResult,
    outcome_dict,
    promote_release,
    promotion_dict,
    publish_channel,
    record_dict,
    rollback_channel,
    rollback_dict,
)
from deployd.rollouts.history import history_entries
from deployd.server.services import services
from deployd.store import ChannelRecord

bp = Blueprint("publish", __name__)

EXTENSION = "deployd.publishers"
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
JSON_TYPES = frozenset({"application/json"})
_SEQUENCE_TAG = re.compile(r'"?([0-9]{1,18})"?', re.ASCII)
MAX_JTI_LENGTH = 128
MAX_REASON_LENGTH = 1000


def authenticator() -> PublisherAuthenticator:
    return authenticator_of(current_app)


def authenticator_of(app: Flask) -> PublisherAuthenticator:
    found: PublisherAuthenticator = app.extensions[EXTENSION]
    return found


def require_publisher(action: str | None = None, channel: str | None = None) -> Publisher:
    """The publisher whose token the request carries as ``Bearer``, allowed to take `action`
    (on `channel`) when one is named; reading needs no action.

    Raises PublisherAuthError (401) when there is no token or it is not known, ScopeError (403
    `scope_not_allowed`) when its scopes do not cover the action.
    """
    publisher = authenticator().authenticate(bearer_token(authorization_header(request)))
    if action is not None:
        require_scope(publisher, action, channel)
    return publisher


def carries_publisher_token() -> bool:
    """True when the request's Authorization is ``Bearer dpub_...`` (valid or not)."""
    token = bearer_token(authorization_header(request))
    return token is not None and is_publisher_token(token)


def _expected_sequence() -> int | None:
    """The sequence the publisher's `If-Match` names; 0 for `If-None-Match: *` (create only)."""
    if_match = request.headers.get("If-Match")
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        if if_none_match.strip() != "*" or if_match is not None:
            raise BadRequestError(
                "If-None-Match on a write may only be '*' (create the channel), without If-Match"
            )
        return 0
    if if_match is None:
        return None
    match = _SEQUENCE_TAG.fullmatch(if_match.strip())
    if match is None:
        raise BadRequestError(
            'If-Match must name one channel sequence, like If-Match: "4" (the ETag of'
            " GET /api/v1/channels/<name>/document)"
        )
    return int(match.group(1))


def _outcome(result: PublishResult, body: dict[str, Any] | None = None) -> Response:
    """The answer to any write: `body` (by default the channel's current record and whether it
    changed), 201 for a channel's first sequence, its ETag."""
    record = result.record
    body = body if body is not None else outcome_dict(result)
    created = result.changed and record.sequence == 1
    response = jsonify(body)
    response.status_code = 201 if created else 200
    response.headers["ETag"] = f'"{record.sequence}"'
    if result.changed:
        # This worker serves the new document at once; the others within their refresh interval.
        services().state.refresh(force=True)
    return response


def _json_object(*, required: bool = True) -> dict[str, Any]:
    payload = request.get_json(silent=True)
    if payload is None and not required and not request.get_data():
        return {}
    if not isinstance(payload, dict):
        raise BadRequestError("the body must be a JSON object")
    return payload


def _channel_from_body(name: str) -> tuple[Channel, str]:
    """The request body as a validated channel named `name`, and its text.

    Raises ChannelValidationError (422) with every problem, 415 for other content types.
    """
    mimetype = request.mimetype
    if mimetype not in YAML_TYPES | JSON_TYPES:
        raise DeploydError(
            "send the channel as application/yaml (or text/yaml) or application/json",
            code="unsupported_media_type",
            status=415,
        )
    data = request.get_data(cache=False)
    if mimetype in YAML_TYPES:
        filename = f"{name}.yaml"
        channel = parse_channel_text(data, filename=filename, expected_name=name)
        return channel, data.decode("utf-8")
    filename = f"{name}.json"
    try:
        text = data.decode("utf-8")
        document = load_json(text)
    except RefusedJSON as e:
        raise ChannelValidationError([Problem(filename, e.line, DOCUMENT_FIELD, e.message)]) from e
    except UnicodeDecodeError as e:
        raise ChannelValidationError(
            [Problem(filename, None, DOCUMENT_FIELD, f"not valid UTF-8 (byte {e.start})")]
        ) from e
    except json.JSONDecodeError as e:
        raise ChannelValidationError(
            [Problem(filename, e.lineno, DOCUMENT_FIELD, f"invalid JSON: {e.msg}")]
        ) from e
    except (ValueError, RecursionError) as e:
        raise ChannelValidationError(
            [Problem(filename, None, DOCUMENT_FIELD, f"unreadable JSON: {e}")]
        ) from e
    return channel_from_document(document, filename=filename, expected_name=name), text


@bp.put(CHANNELS_PATH + "/<name>")
def publish(name: str) -> Response:
    publisher = require_publisher(PUBLISH, name)
    expected_sequence = _expected_sequence()
    channel, source = _channel_from_body(name)
    result = publish_channel(
        services().store,
        channel,
        source=source,
        publisher=publisher.name,
        expected_sequence=expected_sequence,
    )
    return _outcome(result)


def _current(name: str) -> ChannelRecord:
    record = services().store.get_channel(name)
    if record is None:
        raise NotFoundError(f"no channel named {name!r}", code="unknown_channel")
    return record


@bp.get(CHANNELS_PATH + "/<name>/document")
def current_document(name: str) -> Response:
    require_publisher()
    record = _current(name)
    response = jsonify(record_dict(record, full=True))
    response.headers["ETag"] = f'"{record.sequence}"'
    return response


@bp.get(CHANNELS_PATH + "/<name>/history")
def history(name: str) -> Response:
    require_publisher()
    store = services().store
    records = store.history(name)
    if not records:
        raise NotFoundError(f"no channel named {name!r}", code="unknown_channel")
    return jsonify(
        {
            "channel": name,
            "sequence": records[-1].sequence,
            "history": history_entries(records, store.rollout_events(name)),
        }
    )


@bp.get(CHANNELS_PATH + "/<name>/history/<int:sequence>")
def history_entry(name: str, sequence: int) -> Response:
    require_publisher()
    record = services().store.history_entry(name, sequence)
    if record is None:
        _current(name)
        raise NotFoundError(f"channel {name!r} has no sequence {sequence}", code="unknown_sequence")
    return jsonify(record_dict(record, full=True))


def _positive_int(payload: dict[str, Any], key: str) -> int:
    value = payload.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequestError(f"{key!r} must be a positive integer")
    return value


@bp.post(CHANNELS_PATH + "/<name>/rollback")
def rollback(name: str) -> Response:
    publisher = require_publisher(ROLLBACK, name)
    sequence = _positive_int(_json_object(), "sequence")
    result = rollback_channel(
        services().store,
        name,
        sequence,
        publisher=publisher.name,
        expected_sequence=_expected_sequence(),
    )
    return _outcome(result, rollback_dict(result, sequence))


@bp.post(CHANNELS_PATH + "/<name>/promote")
def promote(name: str) -> Response:
    # The target changes; reading the source needs no scope.
    publisher = require_publisher(PROMOTE, name)
    payload = _json_object()
    source, version = payload.get("from"), payload.get("version")
    if not isinstance(source, str) or not source or not isinstance(version, str) or not version:
        raise BadRequestError(
            'the body must name the release: {"from": "beta", "version": "1.6.0"}'
        )
    rollout = payload.get("rollout")
    if rollout is not None and (
        not isinstance(rollout, int) or isinstance(rollout, bool) or not 0 <= rollout <= 100
    ):
        raise BadRequestError("'rollout' must be an integer from 0 to 100")
    pin_values = payload.get("pinValues", False)
    if not isinstance(pin_values, bool):
        raise BadRequestError("'pinValues' must be true or false")
    promotion = promote_release(
        services().store,
        source=source,
        target=name,
        version=version,
        publisher=publisher.name,
        rollout=rollout,
        pin_values=pin_values,
        expected_sequence=_expected_sequence(),
    )
    return _outcome(promotion.result, promotion_dict(promotion, source))


@bp.post(LICENSES_PATH + "/<jti>/revoke")
def revoke(jti: str) -> Response:
    publisher = require_publisher(REVOKE)
    if len(jti) > MAX_JTI_LENGTH or not jti.isprintable():
        raise BadRequestError("that is not a license id (the license's jti claim)")
    reason = _json_object(required=False).get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON_LENGTH:
        raise BadRequestError(
            f"'reason' must be a string of at most {MAX_REASON_LENGTH} characters"
        )
    deployd = services()
    newly = revoke_license(deployd.store, jti, reason=reason, by=publisher.name)
    deployd.state.refresh(force=True)
    return jsonify({"jti": jti, "revoked": True, "already": not newly})


def init_app(app: Flask) -> None:
    settings = app.extensions["deployd"].settings
    app.extensions[EXTENSION] = PublisherAuthenticator(
        app.extensions["deployd"].store,
        static_publishers(
            tokens_file=settings.publisher_tokens_file,
            state_dir=settings.state_dir,
            embedded=settings.embedded,
        ),
    )
    app.register_blueprint(bp)
