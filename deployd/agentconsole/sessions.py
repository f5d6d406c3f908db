"""Signed-in sessions of the system console and the limit on sign-in attempts.

Sessions live in the agent's memory only (a restart signs everyone out): a random id in an
``HttpOnly``, ``SameSite=Strict`` cookie, expiring after `ttl` seconds. Their CSRF tokens are
`deployd.web.csrf` tokens of the session id.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

SESSION_TTL_SECONDS = 8 * 3600
MAX_SESSIONS = 64


@dataclass(frozen=True)
class Session:
    id: str
    expires_at: float
    password_stamp: str


class SessionStore:
    def __init__(
        self, *, ttl: float = SESSION_TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, password_stamp: str) -> Session:
        session = Session(
            id=secrets.token_urlsafe(32),
            expires_at=self.clock() + self.ttl,
            password_stamp=password_stamp,
        )
        with self._lock:
            self._forget_expired()
            while len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions.values(), key=lambda s: s.expires_at)
                del self._sessions[oldest.id]
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None, password_stamp: str) -> Session | None:
        """The live session with that id, signed in with the current password; else None."""
        if not session_id:
            return None
        with self._lock:
            self._forget_expired()
            session = self._sessions.get(session_id)
            if session is not None and session.password_stamp != password_stamp:
                del self._sessions[session_id]
                return None
            return session

    def drop(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)

    def _forget_expired(self) -> None:
        now = self.clock()
        for expired in [s.id for s in self._sessions.values() if s.expires_at <= now]:
            del self._sessions[expired]


class LoginLimiter:
    """At most `max_failures` failed sign-ins in any `window` seconds, from anywhere (the
    console has one administrator, so one budget for all is the safe one)."""

    def __init__(
        self,
        *,
        max_failures: int = 5,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.clock = clock
        self._failures: deque[float] = deque()
        self._lock = threading.Lock()

    def retry_after(self) -> float:
        """Seconds until another attempt is allowed (0: allowed now)."""
        with self._lock:
            now = self.clock()
            while self._failures and self._failures[0] <= now - self.window:
                self._failures.popleft()
            if len(self._failures) < self.max_failures:
                return 0.0
            return self._failures[0] + self.window - now

    def failed(self) -> None:
        with self._lock:
            self._failures.append(self.clock())
