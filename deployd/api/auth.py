"""Reading credentials off a request: the license (operators) from Basic or Bearer auth."""

from __future__ import annotations

import base64

from flask import Request

from deployd.errors import DeploydError, LicenseError

# Well above any real license; anything longer is refused before it is parsed.
MAX_AUTHORIZATION_BYTES = 16_384
BASIC_USER = "license"


def authorization_header(request: Request) -> str | None:
    return _checked_size(request.headers.get("Authorization"))


def _checked_size(value: str | None) -> str | None:
    if value is not None and len(value) > MAX_AUTHORIZATION_BYTES:
        raise DeploydError(
            f"Authorization header is larger than {MAX_AUTHORIZATION_BYTES} bytes",
            code="header_too_large",
            status=431,
        )
    return value


def license_from_request(request: Request) -> str | None:
    """The unverified license a request carries, or None when it carries no credentials.

    Accepts HTTP Basic with user `license` (what the W&B operator sends) or a Bearer token.
    """
    return license_from_authorization(request.headers.get("Authorization"))


def license_from_authorization(value: str | None) -> str | None:
    """The unverified license in an Authorization header value (as `license_from_request`)."""
    value = _checked_size(value)
    if value is None or not value.strip():
        return None
    scheme, _, credentials = value.strip().partition(" ")
    scheme = scheme.lower()
    credentials = credentials.strip()
    if scheme == "bearer":
        return credentials or None
    if scheme != "basic":
        raise LicenseError("malformed", "Authorization must use the Basic or Bearer scheme")
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except ValueError as e:
        # binascii.Error (bad base64), UnicodeDecodeError, and the plain ValueError b64decode
        # raises for a non-ASCII header value (latin-1 bytes reach us as str).
        raise LicenseError("malformed", "Basic credentials are not valid base64") from e
    user, sep, password = decoded.partition(":")
    if not sep or user != BASIC_USER:
        raise LicenseError(
            "malformed", f"HTTP Basic user must be {BASIC_USER!r} with the license as password"
        )
    return password or None
