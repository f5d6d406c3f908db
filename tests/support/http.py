"""Talking to the API through Flask's test client: the operator URL, Basic auth, JSON errors."""

from __future__ import annotations

import base64

CHANNEL_URL = "/api/v1/operator/channel"


def basic(token: str, user: str = "license") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


def error_of(response) -> tuple[int, str]:
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return response.status_code, body["error"]["code"]
