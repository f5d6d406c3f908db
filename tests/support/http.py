"""Talking to the API through Flask's test client: the operator URL, Basic auth, JSON errors."""

from __future__ import annotations

import base64

from werkzeug.test import TestResponse

CHANNEL_URL = "/api/v1/operator/channel"


def basic(token: str, user: str = "license") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


def error_of(response: TestResponse) -> tuple[int, str]:
    """The status and error code of a JSON error answer (checking it has the house shape)."""
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return response.status_code, body["error"]["code"]
