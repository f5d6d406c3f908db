"""Schemathesis on the publisher endpoints with a valid publisher token: generated bodies,
headers and paths must never get a 5xx nor an answer openapi.yaml does not describe."""

from __future__ import annotations

from dataclasses import replace

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from deployd.server.app import create_app
from tests.support.publisher_auth import add_publisher

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def publisher_schema(settings, store):
    app = create_app(replace(settings, rate_limit_enabled=False), store=store)
    schema = schemathesis.openapi.from_wsgi("/openapi.yaml", app)
    return schema.include(tag=["publishing"]).include(path_regex="revoke", method="POST")


@pytest.fixture
def token(store) -> str:
    return add_publisher(store, "fuzzer")


schema = schemathesis.pytest.from_fixture("publisher_schema")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_publisher_endpoints_keep_to_the_openapi_document(case, token):
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
    case.call_and_validate(checks=CHECKS)
