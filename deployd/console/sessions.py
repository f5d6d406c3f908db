"""Release-console sessions: a publisher token is exchanged once for a signed, expiring cookie.

The cookie holds a random session id, the *hash* of the publisher token (what the store keeps,
never the token) and an expiry, signed with HMAC-SHA256 under a key derived from the server's
response-signing key. Every worker and replica holding that key reads the same sessions with no
shared state, and each request looks the publisher up by the hash again: a revoked token or a
changed scope takes effect on the next page. Signing out clears the cookie; a copy of it stops
working at its expiry (SESSION_SECONDS).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

COOKIE_NAME = "deployd_console"
SESSION_SECONDS = 8 * 3600
MAX_COOKIE_BYTES = 1024
_SESSION_PURPOSE = b"deployd release console session v1"
_CSRF_PURPOSE = b"deployd release console csrf v1"


@dataclass(frozen=True)
class ConsoleSession:
    session_id: str
    token_hash: str
    expires: int


def console_secrets(private_key: Ed25519PrivateKey) -> tuple[bytes, bytes]:
    """The session-signing and CSRF keys, derived from the server's response-signing key (one
    purpose each, so neither can stand in for the other or for a spec signature)."""
    raw = private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return (
        hmac.new(raw, _SESSION_PURPOSE, hashlib.sha256).digest(),
        hmac.new(raw, _CSRF_PURPOSE, hashlib.sha256).digest(),
    )


class SessionCookies:
    """Writes and reads signed session cookies."""

    def __init__(self, secret: bytes, *, lifetime: int = SESSION_SECONDS) -> None:
        self._secret = secret
        self.lifetime = lifetime

    def open(self, token_hash: str, *, now: float | None = None) -> tuple[str, ConsoleSession]:
        """A new session for the token hashing to `token_hash`: the cookie value and the session."""
        now = time.time() if now is None else now
        session = ConsoleSession(secrets.token_urlsafe(18), token_hash, int(now) + self.lifetime)
        payload = json.dumps(
            {"sid": session.session_id, "th": token_hash, "exp": session.expires},
            separators=(",", ":"),
        ).encode()
        body = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{body}.{self._sign(body)}", session

    def read(self, value: str | None, *, now: float | None = None) -> ConsoleSession | None:
        """The session a cookie value holds; None when it is missing, forged or expired."""
        if not value or len(value) > MAX_COOKIE_BYTES or value.count(".") != 1:
            return None
        body, signature = value.split(".")
        if not hmac.compare_digest(self._sign(body), signature):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            session = ConsoleSession(str(data["sid"]), str(data["th"]), int(data["exp"]))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return None
        if session.expires <= (time.time() if now is None else now):
            return None
        return session

    def _sign(self, body: str) -> str:
        return hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()


class SignInThrottle:
    """At most `limit` failed sign-ins a minute from one address, in this worker."""

    def __init__(self, limit: int = 10, *, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._lock = threading.Lock()
        self._failures: dict[str, list[float]] = {}

    def allows(self, address: str, *, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            recent = [t for t in self._failures.get(address, []) if t > now - self.window]
            if recent:
                self._failures[address] = recent
            else:
                self._failures.pop(address, None)
            return len(recent) < self.limit

    def failed(self, address: str, *, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            if len(self._failures) > 10_000:  # bounded: forget everyone rather than grow
                self._failures.clear()
            self._failures.setdefault(address, []).append(now)
