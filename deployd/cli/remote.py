"""A deployd server as the CLI's publisher commands see it: the publisher endpoints over HTTP.

Errors the server answers come back as the same DeploydError (a 422 as ChannelValidationError
with every problem), so a command reports them exactly as it reports local ones. The token is sent
only in the Authorization header and never appears in a message.
"""

from __future__ import annotations

import os
from typing import Any, Literal, overload
from urllib.parse import quote

import requests

from deployd import __version__
from deployd.errors import ChannelValidationError, ConfigError, DeploydError, Problem
from deployd.offline.export import ExportOrder
from deployd.protocol import (
    BUNDLES_PATH,
    CHANNELS_PATH,
    CUSTOMERS_PATH,
    EVENTS_PATH,
    LICENSES_PATH,
    release_action_path,
    rollout_path,
)

TOKEN_ENV = "DEPLOYD_PUBLISHER_TOKEN"
SERVER_ENV = "DEPLOYD_SERVER"
TIMEOUT_SECONDS = 30.0


class ServerError(DeploydError):
    """The server answered with an error (its status and code are kept)."""


class PublisherClient:
    """Calls the publisher endpoints of the deployd server at `server` with `token`."""

    def __init__(self, server: str, token: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
        if not server.startswith(("http://", "https://")):
            raise ConfigError(f"--server must be an http:// or https:// URL, not {server!r}")
        self.server = server.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.session.headers["User-Agent"] = f"deployd-cli/{__version__}"

    def close(self) -> None:
        self.session.close()

    @overload
    def _call(
        self, method: str, path: str, *, missing_ok: Literal[False] = False, **kwargs: Any
    ) -> requests.Response: ...

    @overload
    def _call(
        self, method: str, path: str, *, missing_ok: bool, **kwargs: Any
    ) -> requests.Response | None: ...

    def _call(
        self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any
    ) -> requests.Response | None:
        """The server's answer; an error status raises it, but a 404 is None when `missing_ok`."""
        url = self.server + path
        try:
            response = self.session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as e:
            raise DeploydError(
                f"cannot reach the server at {self.server}: {type(e).__name__}",
                code="server_unreachable",
                status=503,
            ) from e
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            raise _server_error(response)
        return response

    def document(self, name: str) -> dict[str, Any] | None:
        """The channel's current record (document, source, sequence...), or None if it is new."""
        response = self._call("GET", f"{CHANNELS_PATH}/{_segment(name)}/document", missing_ok=True)
        return _object(response) if response is not None else None

    def publish(self, name: str, source: str, *, expected_sequence: int | None) -> dict[str, Any]:
        headers = {"Content-Type": "application/yaml"}
        if expected_sequence == 0:
            headers["If-None-Match"] = "*"
        elif expected_sequence is not None:
            headers["If-Match"] = f'"{expected_sequence}"'
        response = self._call(
            "PUT",
            f"{CHANNELS_PATH}/{_segment(name)}",
            data=source.encode("utf-8"),
            headers=headers,
        )
        return _object(response)

    def history(self, name: str) -> list[dict[str, Any]]:
        """History entries, oldest first."""
        response = self._call("GET", f"{CHANNELS_PATH}/{_segment(name)}/history")
        return list(reversed(response.json()["history"]))

    def history_entry(self, name: str, sequence: int) -> dict[str, Any]:
        response = self._call("GET", f"{CHANNELS_PATH}/{_segment(name)}/history/{sequence}")
        return _object(response)

    def rollback(self, name: str, sequence: int) -> dict[str, Any]:
        response = self._call(
            "POST", f"{CHANNELS_PATH}/{_segment(name)}/rollback", json={"sequence": sequence}
        )
        return _object(response)

    def promote(
        self, *, source: str, target: str, version: str, rollout: int | None, pin_values: bool
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"from": source, "version": version, "pinValues": pin_values}
        if rollout is not None:
            body["rollout"] = rollout
        response = self._call("POST", f"{CHANNELS_PATH}/{_segment(target)}/promote", json=body)
        return _object(response)

    def rollout_status(self, name: str) -> list[dict[str, Any]]:
        """The health of each release of the channel, newest first."""
        response = self._call("GET", rollout_path(name))
        return list(response.json()["releases"])

    def change_rollout(
        self, name: str, version: str, action: str, *, reason: str
    ) -> dict[str, Any]:
        """Halt or resume (`action`) one release."""
        path = release_action_path(name, version, action)
        return _object(self._call("POST", path, json={"reason": reason}))

    def revoke_license(self, jti: str, *, reason: str) -> dict[str, Any]:
        response = self._call(
            "POST", f"{LICENSES_PATH}/{_segment(jti)}/revoke", json={"reason": reason}
        )
        return _object(response)

    def customer(self, subject: str) -> dict[str, Any]:
        return _object(self._call("GET", f"{CUSTOMERS_PATH}/{_segment(subject)}"))

    def change_customer(self, subject: str, values: dict[str, Any]) -> dict[str, Any]:
        response = self._call("PATCH", f"{CUSTOMERS_PATH}/{_segment(subject)}", json=values)
        return _object(response)

    def delete_customer(self, subject: str) -> dict[str, Any]:
        return _object(self._call("DELETE", f"{CUSTOMERS_PATH}/{_segment(subject)}"))

    def events(self, params: dict[str, Any]) -> dict[str, Any]:
        """One page of the event log (GET /api/v1/events with `params`)."""
        return _object(self._call("GET", EVENTS_PATH, params=params))

    def export_bundle(self, order: ExportOrder) -> bytes:
        """The offline bundle `POST /api/v1/bundles` makes for `order` (deployd.offline)."""
        body: dict[str, Any] = {
            "license": order.license,
            "expiresIn": f"{int(order.expires_in)}s",
        }
        if order.channel is not None:
            body["channel"] = order.channel
        if order.releases:
            body["releases"] = list(order.releases)
        if order.releases_since is not None:
            body["releasesSince"] = order.releases_since
        return self._call("POST", BUNDLES_PATH, json=body).content

    def read(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """GET `path` (a read API, e.g. the fleet's) and return its JSON object."""
        return _object(self._call("GET", path, params=params or {}))


def _object(response: requests.Response) -> dict[str, Any]:
    """The JSON object a publisher endpoint answers (deployd/openapi.yaml)."""
    body: dict[str, Any] = response.json()
    return body


def _segment(text: str) -> str:
    return quote(text, safe="")


def _server_error(response: requests.Response) -> DeploydError:
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return ServerError(
            f"the server answered HTTP {response.status_code} without a deployd error",
            code="http_error",
            status=response.status_code,
        )
    if code == "invalid_channel" and isinstance(error.get("problems"), list):
        try:
            return ChannelValidationError(
                [Problem(p["file"], p["line"], p["field"], p["message"]) for p in error["problems"]]
            )
        except (KeyError, TypeError):
            pass
    return ServerError(
        f"{message} (HTTP {response.status_code} {code})", code=code, status=response.status_code
    )


def client_from(server: str, token: str | None) -> PublisherClient:
    """A client for `server` with `token`, else the token in DEPLOYD_PUBLISHER_TOKEN."""
    token = token or os.environ.get(TOKEN_ENV, "").strip() or None
    if token is None:
        raise ConfigError(
            f"talking to a server needs a publisher token: set {TOKEN_ENV} (or pass --token)."
            " `deployd publisher create NAME --action ACTION ...` makes one; the embedded"
            " development server keeps one in .deployd/dev-publisher.token"
        )
    return PublisherClient(server, token)
