"""Reading credentials off a request: one Authorization header parser for every credential.

Operators send their license with HTTP Basic (user `license`) or as a Bearer token; publishers
send their publisher token as a Bearer token. Both are read by `parse_authorization`.
"""

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


def parse_authorization(value: str | None) -> tuple[str, str] | None:
    """The scheme (lowercased) and credentials of an Authorization header value; None when the
    header is missing or blank. A header over MAX_AUTHORIZATION_BYTES is refused (431)."""
    value = _checked_size(value)
    if value is None or not value.strip():
        return None
    scheme, _, credentials = value.strip().partition(" ")
    return scheme.lower(), credentials.strip()


def bearer_token(value: str | None) -> str | None:
    """The credentials of a ``Bearer`` Authorization header value, else None."""
    parsed = parse_authorization(value)
    if parsed is None or parsed[0] != "bearer":
        return None
    return parsed[1] or None


def license_from_request(request: Request) -> str | None:
    """The unverified license a request carries, or None when it carries no credentials.

    Accepts HTTP Basic with user `license` (what the W&B operator sends) or a Bearer token.
    """
    return license_from_authorization(request.headers.get("Authorization"))


def license_from_authorization(value: str | None) -> str | None:
    """The unverified license in an Authorization header value (as `license_from_request`)."""
    parsed = parse_authorization(value)
    if parsed is None:
        return None
    scheme, credentials = parsed
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
