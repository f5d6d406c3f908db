"""Where the client's license comes from, and the one claim it reads from it without verifying.

The client never logs a license or puts it in a message; `LicenseChoice` keeps it out of `repr`.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployd.errors import ConfigError

LICENSE_ENV = "DEPLOYD_LICENSE"
MAX_LICENSE_BYTES = 16_384


@dataclass(frozen=True)
class LicenseChoice:
    """A license and where it was found (``license file``, ``DEPLOYD_LICENSE`` ...)."""

    value: str = field(repr=False)
    source: str


def find_license(
    *,
    configured: str | None = None,
    license_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    cr_values: Mapping[str, Any] | None = None,
    user_values: Mapping[str, Any] | None = None,
) -> LicenseChoice | None:
    """The first license found: `configured`, `license_file`, `DEPLOYD_LICENSE`, then
    ``global.license`` in the custom-resource values, then in the user-input values.

    A license file that cannot be read or is empty is an error (a mounted Secret went wrong),
    not a reason to fall through to the next source. Returns None when no source has one.
    """
    if configured:
        return LicenseChoice(configured.strip(), "configuration")
    if license_file is not None:
        return LicenseChoice(_read_license_file(Path(license_file)), "license file")
    environ = os.environ if environ is None else environ
    if environ.get(LICENSE_ENV, "").strip():
        return LicenseChoice(environ[LICENSE_ENV].strip(), LICENSE_ENV)
    for values, source in ((cr_values, "custom resource"), (user_values, "user-input values")):
        found = _global_license(values)
        if found:
            return LicenseChoice(found, f"global.license in the {source}")
    return None


def license_channel(license: str) -> str | None:
    """The `channel` claim of a JWT license, read WITHOUT verifying it, or None.

    Only used to know which channel to expect in a spec (mix-and-match check); the license is
    the client's own credential, so reading it unverified trusts nothing the server sent.
    """
    channel = unverified_claims(license).get("channel")
    return channel if isinstance(channel, str) and channel else None


def unverified_claims(license: str) -> dict[str, Any]:
    """The claims of a JWT license, read WITHOUT verifying it (``{}`` when it is no JWT).

    For showing the client's own license to its administrator (customer, expiry) and choosing
    the channel to expect; never for deciding what to trust.
    """
    parts = license.split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return {}
    return payload if isinstance(payload, dict) else {}


def _read_license_file(path: Path) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_LICENSE_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read license file {str(path)!r}: {e.strerror}") from e
    if len(data) > MAX_LICENSE_BYTES:
        raise ConfigError(f"license file {str(path)!r} is larger than {MAX_LICENSE_BYTES} bytes")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError as e:
        raise ConfigError(f"license file {str(path)!r} is not UTF-8 text") from e
    if not text:
        raise ConfigError(f"license file {str(path)!r} is empty")
    return text


def _global_license(values: Mapping[str, Any] | None) -> str | None:
    if not values:
        return None
    section = values.get("global")
    if not isinstance(section, Mapping):
        return None
    found = section.get("license")
    return found.strip() if isinstance(found, str) and found.strip() else None
