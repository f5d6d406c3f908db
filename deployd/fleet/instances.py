"""Instance ids: which cluster a poll comes from.

An agent sends `Deployd-Instance-Id` (a stable id it keeps in its cache directory, or one it was
given). An operator that sends none (the W&B operator) counts as one instance per license subject
and User-Agent. Either way the server keys the instance on a hash of the license subject and that
id, so no license text is stored or logged, and one customer can never write into another
customer's instance by sending the same id.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from deployd.errors import BadRequestError
from deployd.protocol import (
    AGENT_VERSION_HEADER,
    INSTANCE_ID_HEADER,
    INSTANCE_ID_PATTERN,
    KUBERNETES_VERSION_HEADER,
    VERSION_PATTERN,
)

MAX_USER_AGENT_CHARS = 200
_ID = re.compile(INSTANCE_ID_PATTERN)
_VERSION = re.compile(VERSION_PATTERN)


def _environ_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


INSTANCE_ID_ENVIRON = _environ_key(INSTANCE_ID_HEADER)
AGENT_VERSION_ENVIRON = _environ_key(AGENT_VERSION_HEADER)
KUBERNETES_VERSION_ENVIRON = _environ_key(KUBERNETES_VERSION_HEADER)
USER_AGENT_ENVIRON = "HTTP_USER_AGENT"


@dataclass(frozen=True)
class Caller:
    """What a poll says about the instance making it (each part checked)."""

    agent_id: str | None
    agent_version: str | None
    kubernetes_version: str | None
    user_agent: str | None

    def key(self, subject: str) -> str:
        """The instance key of this caller under license subject `subject`."""
        if self.agent_id is not None:
            return instance_key(subject, self.agent_id)
        return derived_instance_key(subject, self.user_agent)


def instance_key(subject: str, agent_id: str) -> str:
    """The key of the instance that sends `Deployd-Instance-Id: agent_id` with a license of
    subject `subject` (what a rollout report names as `instance` maps to the same key)."""
    return _hashed("i", subject, agent_id)


def derived_instance_key(subject: str, user_agent: str | None) -> str:
    """The key of an instance that sends no id: one per license subject and User-Agent."""
    return _hashed("u", subject, user_agent or "")


def _hashed(kind: str, subject: str, value: str) -> str:
    digest = hashlib.sha256(f"{kind}\0{subject}\0{value}".encode()).hexdigest()
    return kind + digest[:31]


def caller_from_environ(environ: Mapping[str, object]) -> Caller:
    """The caller's instance headers, from a WSGI environ; BadRequestError when one is malformed."""

    def header(key: str) -> str | None:
        value = environ.get(key)
        return value if isinstance(value, str) and value else None

    user_agent = header(USER_AGENT_ENVIRON)
    return Caller(
        agent_id=_checked(header(INSTANCE_ID_ENVIRON), _ID, INSTANCE_ID_HEADER),
        agent_version=_checked(header(AGENT_VERSION_ENVIRON), _VERSION, AGENT_VERSION_HEADER),
        kubernetes_version=_checked(
            header(KUBERNETES_VERSION_ENVIRON), _VERSION, KUBERNETES_VERSION_HEADER
        ),
        user_agent=user_agent[:MAX_USER_AGENT_CHARS] if user_agent else None,
    )


def _checked(value: str | None, pattern: re.Pattern[str], header: str) -> str | None:
    if value is None or pattern.fullmatch(value):
        return value
    raise BadRequestError(
        f"{header} must be 1 to 64 characters: letters, digits and . _ - (and : in an instance"
        " id), starting with a letter or digit",
        code="bad_instance_header",
    )
