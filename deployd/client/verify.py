"""Pure verification of a spec response: bytes and a header in, a `VerifiedSpec` or a refusal out.

Nothing here does I/O or reads the clock: the caller passes `now`, the trusted keys and what it
expects, so every rule can be tested on its own. The checks, in order:

1. the detached signature over the exact body bytes, made by one of the trusted keys (an unknown
   key id is refused like a bad signature);
2. the body is a JSON object with a `metadata` mapping of strings only, a non-empty `chart` mapping
   and a `values` mapping;
3. the spec is for the channel (and, when pinned, the release) the client asked for
   (mix-and-match);
4. its `sequence` is not below the highest one accepted for that channel (rollback), and at that
   same sequence its release is not below the release accepted there (downgrade: a validly
   signed spec the server gave a client still on an older release, replayed), unless the user
   pinned exactly this release on purpose;
5. its `expires` is still in the future (freeze).

A publisher's rollback is a new publish, so it comes with a higher sequence and goes through.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from deployd.client.errors import SpecRefusedError
from deployd.protocol import parse_rfc3339
from deployd.semver import Version
from deployd.specs.signing import SignatureError, verify_signature

REQUIRED_METADATA = ("channel", "release", "sequence", "issuedAt", "expires")
_SEQUENCE = re.compile(r"^(0|[1-9][0-9]{0,17})$")

# Refusal reasons (SpecRefusedError.reason), stable for logs and tests.
MISSING_SIGNATURE = "missing_signature"
MALFORMED_SIGNATURE = "malformed_signature"
UNKNOWN_KEY = "unknown_key"
BAD_SIGNATURE = "bad_signature"
MALFORMED = "malformed"
METADATA_NOT_STRINGS = "metadata_not_strings"
MISSING_FIELD = "missing_field"
WRONG_CHANNEL = "wrong_channel"
WRONG_RELEASE = "wrong_release"
ROLLBACK = "rollback"
DOWNGRADE = "downgrade"
EXPIRED = "expired"

_SIGNATURE_REASONS = {
    "missing": MISSING_SIGNATURE,
    "malformed": MALFORMED_SIGNATURE,
    "unknown_key": UNKNOWN_KEY,
    "bad_signature": BAD_SIGNATURE,
}


@dataclass(frozen=True)
class VerifiedSpec:
    """A spec that passed every check. Only `verify_spec` makes one; treat it as read-only."""

    body: bytes = field(repr=False)
    signature: str = field(repr=False)
    key_id: str
    channel: str
    release: str
    sequence: int
    expires: datetime
    metadata: Mapping[str, str] = field(repr=False)
    chart: Mapping[str, Any] = field(repr=False)
    values: Mapping[str, Any] = field(repr=False)

    def is_expired(self, now: float) -> bool:
        """True once `now` (seconds since the epoch) has reached `expires`."""
        return now >= self.expires.timestamp()


@dataclass(frozen=True)
class Floor:
    """What a client has accepted of one channel: the highest `sequence`, and the release it
    accepted at that sequence (None when not known, e.g. floors written by an older client)."""

    sequence: int
    release: str | None = None

    def refuses(self, sequence: int, release: str) -> bool:
        """True when a spec of (`sequence`, `release`) would take the client back."""
        if sequence != self.sequence:
            return sequence < self.sequence
        return self.release is not None and _release_below(release, self.release)


def raise_floor(floor: Floor | None, spec: VerifiedSpec, *, pinned: bool) -> Floor:
    """The floor once `spec` is accepted: a higher sequence replaces it; at the same sequence a
    higher release raises it, and a release the user pinned sets it (so that unpinning again
    continues from the pinned release); a lower sequence (only ever pinned) leaves it alone."""
    if floor is None or spec.sequence > floor.sequence:
        return Floor(spec.sequence, spec.release)
    if spec.sequence < floor.sequence:
        return floor
    if pinned or floor.release is None or _release_below(floor.release, spec.release):
        return Floor(spec.sequence, spec.release)
    return floor


def _release_below(release: str, other: str) -> bool:
    """True when `release` precedes `other` in semver order; releases that are not semantic
    versions cannot be ordered and are never below anything."""
    try:
        return Version.parse(release) < Version.parse(other)
    except ValueError:
        return False


def verify_spec(
    unverified_body: bytes,
    signature_header: str | None,
    *,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    now: float,
    expected_channel: str,
    pinned_release: str | None = None,
    floors: Mapping[str, Floor] | None = None,
) -> VerifiedSpec:
    """Return the spec in `unverified_body` if it passes every check; raise SpecRefusedError.

    `expected_channel` is the channel the client asked for (a spec of any other is refused);
    `floors` maps a channel to what the client has accepted of it so far (see `raise_floor`).
    """
    try:
        key_id = verify_signature(signature_header, unverified_body, trusted_keys)
    except SignatureError as e:
        raise SpecRefusedError(_SIGNATURE_REASONS.get(e.reason, BAD_SIGNATURE), str(e)) from e

    document = _parse_json_object(unverified_body)
    metadata = document.get("metadata")
    if not isinstance(metadata, dict):
        raise SpecRefusedError(MISSING_FIELD, "spec has no metadata mapping")
    not_strings = sorted(str(k) for k, v in metadata.items() if not isinstance(v, str))
    if not_strings:
        raise SpecRefusedError(
            METADATA_NOT_STRINGS,
            f"spec metadata values must be strings; not a string: {', '.join(not_strings)}",
        )
    missing = [name for name in REQUIRED_METADATA if not metadata.get(name)]
    if missing:
        raise SpecRefusedError(MISSING_FIELD, f"spec metadata lacks {', '.join(missing)}")
    chart = document.get("chart")
    if not isinstance(chart, dict) or not chart:
        raise SpecRefusedError(MISSING_FIELD, "spec has no chart mapping")
    values = document.get("values")
    if not isinstance(values, dict):
        raise SpecRefusedError(MISSING_FIELD, "spec has no values mapping")

    channel, release = metadata["channel"], metadata["release"]
    if not _SEQUENCE.match(metadata["sequence"]):
        raise SpecRefusedError(
            MALFORMED, f"spec sequence {metadata['sequence']!r} is not a decimal count"
        )
    sequence = int(metadata["sequence"])
    try:
        expires = parse_rfc3339(metadata["expires"])
        parse_rfc3339(metadata["issuedAt"])
    except ValueError as e:
        raise SpecRefusedError(MALFORMED, f"spec timestamps are not RFC 3339: {e}") from e

    if channel != expected_channel:
        raise SpecRefusedError(
            WRONG_CHANNEL, f"spec is for channel {channel!r}, not the expected {expected_channel!r}"
        )
    if pinned_release is not None and release != pinned_release:
        raise SpecRefusedError(
            WRONG_RELEASE, f"spec is for release {release!r}, but {pinned_release!r} is pinned"
        )
    floor = (floors or {}).get(channel)
    if floor is not None and pinned_release is None:
        _check_floor(floor, channel, sequence, release)
    if now >= expires.timestamp():
        raise SpecRefusedError(
            EXPIRED, f"spec expired at {metadata['expires']} (freeze); the server must re-sign it"
        )
    return VerifiedSpec(
        body=unverified_body,
        signature=signature_header or "",
        key_id=key_id,
        channel=channel,
        release=release,
        sequence=sequence,
        expires=expires,
        metadata=dict(metadata),
        chart=chart,
        values=values,
    )


def _check_floor(floor: Floor, channel: str, sequence: int, release: str) -> None:
    if not floor.refuses(sequence, release):
        return
    if sequence < floor.sequence:
        raise SpecRefusedError(
            ROLLBACK,
            f"spec sequence {sequence} of channel {channel!r} is older than sequence"
            f" {floor.sequence} already accepted (rollback)",
        )
    raise SpecRefusedError(
        DOWNGRADE,
        f"spec of release {release!r} is below release {floor.release!r} already accepted at"
        f" sequence {sequence} of channel {channel!r} (a replayed spec; to go back, pin the"
        " release, or publish a rollback)",
    )


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers may keep different copies of a repeated key; a signed body must mean one thing.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise SpecRefusedError(MALFORMED, f"spec body is not valid JSON: {e}") from e
    if not isinstance(document, dict):
        raise SpecRefusedError(MALFORMED, "spec body is not a JSON object")
    return document
