"""Customer records over HTTP (deployd.customers): read them with any publisher token; change
them with one whose scopes allow ``customers``.

  GET    /api/v1/customers              every record, by subject, paged (`limit`, `after`)
  GET    /api/v1/customers/<sub>        one customer: its record (null without) and its effect
  PUT    /api/v1/customers/<sub>        the whole record (fields left out are cleared)
  PATCH  /api/v1/customers/<sub>        only the fields given (null clears one)
  DELETE /api/v1/customers/<sub>        no record any more: the license applies as it is

A change reaches this worker's poll path at once and every other worker within its refresh
interval.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request

from deployd.api.publishing import require_publisher
from deployd.customers.changes import clear_customer, customer_dict, set_customer
from deployd.customers.records import check_subject
from deployd.errors import BadRequestError
from deployd.protocol import CUSTOMERS_PATH
from deployd.publishers import CUSTOMERS
from deployd.server.services import services

bp = Blueprint("customers", __name__)

DEFAULT_PAGE = 100
MAX_PAGE = 1000


@bp.get(CUSTOMERS_PATH)
def list_customers() -> Response:
    require_publisher()
    limit = _limit(request.args.get("limit"))
    after = request.args.get("after") or ""
    records = [r for r in services().store.customers() if r.subject > after]
    page = records[:limit]
    more = len(records) > limit
    return jsonify(
        {
            "customers": [r.to_dict() for r in page],
            "next": page[-1].subject if more and page else None,
        }
    )


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_PAGE
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise BadRequestError(f"'limit' must be a whole number from 1 to {MAX_PAGE}")
    return int(text)


@bp.get(CUSTOMERS_PATH + "/<subject>")
def show_customer(subject: str) -> Response:
    require_publisher()
    check_subject(subject)
    return jsonify(customer_dict(subject, services().store.customer(subject)))


@bp.put(CUSTOMERS_PATH + "/<subject>")
def replace_customer(subject: str) -> Response:
    return _change(subject, replace_all=True)


@bp.patch(CUSTOMERS_PATH + "/<subject>")
def update_customer(subject: str) -> Response:
    return _change(subject, replace_all=False)


@bp.delete(CUSTOMERS_PATH + "/<subject>")
def delete_customer(subject: str) -> Response:
    publisher = require_publisher(CUSTOMERS)
    record = clear_customer(services().store, subject, by=publisher.name)
    return _changed(subject, record)


def _change(subject: str, *, replace_all: bool) -> Response:
    publisher = require_publisher(CUSTOMERS)
    check_subject(subject)
    record = set_customer(
        services().store, subject, _json_object(), by=publisher.name, replace_all=replace_all
    )
    return _changed(subject, record)


def _changed(subject: str, record: Any) -> Response:
    """The answer to a change; this worker's poll path sees it at once."""
    book = services().customer_book
    if book is not None:
        book.refresh()
    return jsonify(customer_dict(subject, record))


def _json_object() -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise BadRequestError("send the customer record as application/json")
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict):
        raise BadRequestError("the body must be a JSON object of customer fields")
    return payload


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
