"""CSRF tokens bound to a session: every form a console serves carries one, every POST checks it.

A token is an HMAC of the session's id under the console's secret, so a page from another site
cannot know it (it never sees the session id: the cookie is HttpOnly and SameSite=Strict), and a
token from one session is worthless in another. Nothing is stored.
"""

from __future__ import annotations

import hashlib
import hmac

FORM_FIELD = "csrf_token"
_PURPOSE = b"deployd console csrf v1\x00"


class CsrfTokens:
    """Issues and checks the CSRF tokens of one console (one secret)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("a CSRF secret is at least 32 bytes")
        self._secret = secret

    def issue(self, session_id: str) -> str:
        """The token of `session_id` (the same for the session's whole life)."""
        return hmac.new(self._secret, _PURPOSE + session_id.encode(), hashlib.sha256).hexdigest()

    def check(self, session_id: str, token: str | None) -> bool:
        """True when `token` is the token of `session_id` (compared in constant time)."""
        if not token or not session_id:
            return False
        return hmac.compare_digest(self.issue(session_id), token)
