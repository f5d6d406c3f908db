"""What the console's pages show, computed from the agent's state with the client's own merge.

Every read-only text passes through `mask_secrets` (with the agent's license as a known secret),
so a license or password in the channel spec, the custom resource or the merged result never
reaches a page.
"""

from __future__ import annotations

import difflib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import yaml

from deployd.client.errors import FetchError
from deployd.client.fetch import HttpFetcher
from deployd.client.hierarchy import RELEASE_PIN_KEY, DesiredState, desired_state
from deployd.client.licensing import unverified_claims
from deployd.client.poller import Poller
from deployd.client.redact import mask_secrets
from deployd.protocol import CHANNELS_PATH, rfc3339

EXPIRY_WARNING_DAYS = 30


def as_yaml(document: Mapping[str, Any] | None, *, secrets: tuple[str, ...] = ()) -> str:
    if not document:
        return "{}\n"
    text = yaml.safe_dump(dict(document), sort_keys=True, allow_unicode=True)
    return mask_secrets(text, secrets)


def when(timestamp: float | None) -> str:
    return rfc3339(timestamp) if timestamp is not None else "never"


@dataclass(frozen=True)
class LicenseInfo:
    customer: str
    expires: str
    days_left: int | None

    @property
    def expiring(self) -> bool:
        return self.days_left is not None and self.days_left < EXPIRY_WARNING_DAYS


def license_info(license: str | None, now: float) -> LicenseInfo | None:
    """The customer and expiry of the agent's own license, read without verifying it."""
    if license is None:
        return None
    claims = unverified_claims(license)
    customer = claims.get("sub")
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        return LicenseInfo(str(customer or "unknown"), "no expiry", None)
    return LicenseInfo(
        customer=str(customer or "unknown"),
        expires=rfc3339(expires),
        days_left=int((expires - now) // 86400),
    )


@dataclass(frozen=True)
class Preview:
    """The merged result with some user values, and what would change against what is applied."""

    merged: str
    diff: str
    pin_note: str | None


def _identity(state: DesiredState | None) -> dict[str, Any]:
    if state is None:
        return {}
    return {"release": state.release, "chart": dict(state.chart), "values": dict(state.values)}


def preview(poller: Poller, user_values: Mapping[str, Any], *, secrets: tuple[str, ...]) -> Preview:
    """Merge the held channel spec with `user_values` and the custom resource; diff the result
    against the state applied last (release, chart and values)."""
    spec = poller.held_spec
    applied = poller.applied.desired if poller.applied is not None else None
    merged = (
        desired_state(spec, user_values=user_values, custom_resource=poller.custom_resource)
        if spec is not None
        else None
    )
    before = as_yaml(_identity(applied), secrets=secrets).splitlines(keepends=True)
    after = as_yaml(_identity(merged), secrets=secrets).splitlines(keepends=True)
    diff = "".join(difflib.unified_diff(before, after, "applied now", "after saving"))
    pin = user_values.get(RELEASE_PIN_KEY)
    pin_note = None
    if isinstance(pin, str) and spec is not None and pin.strip() != spec.release:
        pin_note = (
            f"These values pin release {pin.strip()}: the agent asks the server for that release"
            f" on its next poll; the preview merges the spec it holds now (release {spec.release})."
        )
    shown = as_yaml(merged.document() if merged else None, secrets=secrets)
    return Preview(shown, diff, pin_note)


@dataclass(frozen=True)
class OfferedRelease:
    version: str
    chart_version: str
    released_at: str
    required: bool
    rollout: str
    notes: str


class ReleaseCatalog:
    """The releases the agent's channel offers, from the server (``GET /api/v1/channels/<name>``
    with the agent's license), fetched when a page asks, with the agent's timeouts and limits."""

    def __init__(self, poller: Poller) -> None:
        config = poller.config
        self.poller = poller
        self._lock = threading.Lock()
        self._fetcher = (
            HttpFetcher(
                connect_timeout=config.connect_timeout,
                read_timeout=config.read_timeout,
                total_timeout=config.total_timeout,
                max_body_bytes=config.max_body_bytes,
                ca_trust=config.ca_trust,
            )
            if config.server is not None
            else None
        )

    def releases(self) -> list[OfferedRelease]:
        """The channel's releases, newest first; FetchError with a readable message otherwise."""
        config = self.poller.config
        if self._fetcher is None or config.server is None:
            raise FetchError("offline", "this agent reads an offline spec: it has no server to ask")
        url = config.server.rstrip("/") + CHANNELS_PATH + "/" + quote(self.poller.expected_channel)
        with self._lock:
            response = self._fetcher.get(
                url, headers={"Accept": "application/json"}, license=config.license
            )
        if response.status != 200:
            raise FetchError(
                "http_error",
                f"the server answered {response.status} when asked for the channel's releases",
                http_status=response.status,
            )
        try:
            document = json.loads(response.body)
            return [_offered(item) for item in document["releases"]]
        except (ValueError, KeyError, TypeError) as e:
            raise FetchError("malformed", "the server's list of releases is not readable") from e

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()


def _offered(item: Mapping[str, Any]) -> OfferedRelease:
    rollout = item.get("rollout")
    return OfferedRelease(
        version=str(item["version"]),
        chart_version=str(item.get("chartVersion") or ""),
        released_at=str(item.get("releasedAt") or ""),
        required=bool(item.get("required")),
        rollout=f"{rollout}%" if isinstance(rollout, int | float) else "everyone",
        notes=str(item.get("notes") or ""),
    )
