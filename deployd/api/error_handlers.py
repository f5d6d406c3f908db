"""One JSON error shape for every failure: `{"error": {"code": ..., "message": ...}}`."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from deployd.errors import (
    DeploydError,
    MetricsAuthError,
    PublisherAuthError,
    RateLimitedError,
    StoreUnavailableError,
)
from deployd.metrics.hooks import refused

logger = logging.getLogger(__name__)

# Werkzeug's own errors (routing, size limits, methods) mapped onto stable codes.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    411: "length_required",
    412: "precondition_failed",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "unprocessable",
    428: "precondition_required",
    429: "rate_limited",
    431: "header_too_large",
}


def error_response(status: int, code: str, message: str) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def _deployd_error(e: DeploydError) -> Response:
    refused(e)
    response = jsonify(e.to_dict())
    response.status_code = e.status
    if isinstance(e, RateLimitedError):
        response.headers["Retry-After"] = str(e.retry_after)
    elif isinstance(e, StoreUnavailableError):
        response.headers["Retry-After"] = "5"
    if isinstance(e, PublisherAuthError):
        response.headers["WWW-Authenticate"] = 'Bearer realm="deployd-publishers"'
    elif isinstance(e, MetricsAuthError):
        response.headers["WWW-Authenticate"] = 'Bearer realm="deployd-metrics"'
    elif e.status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="deployd", charset="UTF-8"'
    return response


def _http_error(e: HTTPException) -> Response:
    status = e.code or 500
    code = HTTP_CODES.get(status, "http_error")
    response = error_response(status, code, e.description or e.name)
    if status == 405 and isinstance(e, MethodNotAllowed) and e.valid_methods:
        response.headers["Allow"] = ", ".join(e.valid_methods)
    return response


def _unexpected(e: Exception) -> Response:
    logger.exception("unhandled error")
    return error_response(500, "internal", "internal server error")


def init_app(app: Flask) -> None:
    app.register_error_handler(DeploydError, _deployd_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
