"""Webhooks: where events are POSTed, and how one POST is made and signed.

Configured by settings: DEPLOYD_WEBHOOK_URLS (comma-separated) and DEPLOYD_WEBHOOK_EVENTS (the
event types sent; empty: all). A production server (with REDIS_URL) refuses a plain http:// URL
unless DEPLOYD_WEBHOOK_ALLOW_HTTP says otherwise. A URL is never logged whole (it may carry a
secret in its path or query): messages name its host.

A POST's body is ``{"kind": "deployd.event", "event": {...}}`` (the event as GET /api/v1/events
shows it), signed like a spec: ``Deployd-Signature: keyid="...", alg="ed25519", sig="..."`` over
the exact body bytes, with the server's response-signing key, so a receiver checks it with the
key of that id in /.well-known/jwks.json. ``Deployd-Event-Id`` carries the event id: delivery is
at least once, and a receiver drops an id it has seen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from deployd import __version__
from deployd.errors import ConfigError
from deployd.events.types import EVENT_TYPES
from deployd.protocol import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER
from deployd.server.settings import Settings
from deployd.specs.signing import SpecSigner
from deployd.store import EventRecord

CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_SECONDS = 10.0
EVENT_KIND = "deployd.event"
# Answers worth trying again; any other 4xx is the receiver refusing this event for good.
_RETRYABLE_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Webhook:
    url: str

    @property
    def host(self) -> str:
        """What messages name: the URL's host (and port), never its path or credentials."""
        return urlsplit(self.url).hostname or "?"


@dataclass(frozen=True)
class WebhookConfig:
    hooks: tuple[Webhook, ...]
    types: frozenset[str]  # empty: every type
    attempts: int
    backoff: float

    def wants(self, event: EventRecord) -> bool:
        return not self.types or event.type in self.types


def webhook_config(settings: Settings) -> WebhookConfig | None:
    """The webhooks `settings` configure, checked, or None when there are none.

    Raises ConfigError for a URL that is not http(s) with a host, for http:// on a server with
    Redis unless DEPLOYD_WEBHOOK_ALLOW_HTTP, and for an unknown event type."""
    unknown = sorted(set(settings.webhook_events) - set(EVENT_TYPES))
    if unknown:
        raise ConfigError(
            f"DEPLOYD_WEBHOOK_EVENTS: unknown event type {', '.join(unknown)}"
            f" (known: {', '.join(EVENT_TYPES)})"
        )
    if not settings.webhook_urls:
        return None
    hooks = tuple(_checked(url, settings) for url in settings.webhook_urls)
    return WebhookConfig(
        hooks=hooks,
        types=frozenset(settings.webhook_events),
        attempts=settings.webhook_attempts,
        backoff=settings.webhook_backoff,
    )


def _checked(url: str, settings: Settings) -> Webhook:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Not repeated: a URL may carry a secret.
        raise ConfigError("DEPLOYD_WEBHOOK_URLS: every URL must be http:// or https:// with a host")
    if parts.scheme == "http" and not settings.embedded and not settings.webhook_allow_http:
        raise ConfigError(
            f"DEPLOYD_WEBHOOK_URLS: the webhook to {parts.hostname} is plain http://; with"
            " REDIS_URL set, webhooks must use https:// (DEPLOYD_WEBHOOK_ALLOW_HTTP=1 allows"
            " http://, e.g. to a receiver on the same host)"
        )
    return Webhook(url)


def webhook_body(event: EventRecord) -> bytes:
    return json.dumps({"kind": EVENT_KIND, "event": event.to_dict()}, separators=(",", ":")).encode(
        "utf-8"
    )


@dataclass(frozen=True)
class Attempt:
    """How one POST went: `ok`, or whether trying again may help, and why not, for the log."""

    ok: bool
    retry: bool
    detail: str


def post_event(
    session: requests.Session, hook: Webhook, event: EventRecord, signer: SpecSigner
) -> Attempt:
    """POST `event` to `hook` once, signed; never raises for a network or HTTP failure."""
    body = webhook_body(event)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"deployd/{__version__}",
        SIGNATURE_HEADER: signer.signature_header(body),
        EVENT_ID_HEADER: str(event.id),
        EVENT_TYPE_HEADER: event.type,
    }
    try:
        response = session.post(
            hook.url,
            data=body,
            headers=headers,
            timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
            allow_redirects=False,
        )
    except requests.RequestException as e:
        return Attempt(ok=False, retry=True, detail=e.__class__.__name__)
    status = response.status_code
    response.close()
    if 200 <= status < 300:
        return Attempt(ok=True, retry=False, detail=str(status))
    retry = status >= 500 or status in _RETRYABLE_STATUSES
    return Attempt(ok=False, retry=retry, detail=f"HTTP {status}")
