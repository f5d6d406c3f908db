"""Pure verification of a spec response: bytes and a header in, a `VerifiedSpec` or a refusal out.

Nothing here does I/O or reads the clock: the caller passes `now`, the trusted keys and what it
expects, so every rule can be tested on its own. The checks, in order:

1. the detached signature over the exact body bytes, made by one of the trusted keys (an unknown
   key id is refused like a bad signature);
2. the body is a JSON object with a `metadata` mapping of strings only, a non-empty `chart` mapping
   and a `values` mapping;
3. the spec is for the channel (and, when pinned, the release) the client asked for
   (mix-and-match);
4. its `sequence` is not below the highest one accepted for that channel (rollback), unless the
   user pinned exactly this release on purpose;
5. its `expires` is still in the future (freeze).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from deployd.client.errors import SpecRefusedError
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


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp that carries a UTC offset; raise ValueError otherwise."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return parsed.astimezone(UTC)


def verify_spec(
    unverified_body: bytes,
    signature_header: str | None,
    *,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    now: float,
    expected_channel: str | None = None,
    pinned_release: str | None = None,
    sequence_floors: Mapping[str, int] | None = None,
) -> VerifiedSpec:
    """Return the spec in `unverified_body` if it passes every check; raise SpecRefusedError.

    `sequence_floors` maps a channel to the highest sequence accepted for it so far.
    `expected_channel` is None only when the client cannot know its channel (anonymous access).
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

    if expected_channel is not None and channel != expected_channel:
        raise SpecRefusedError(
            WRONG_CHANNEL, f"spec is for channel {channel!r}, not the expected {expected_channel!r}"
        )
    if pinned_release is not None and release != pinned_release:
        raise SpecRefusedError(
            WRONG_RELEASE, f"spec is for release {release!r}, but {pinned_release!r} is pinned"
        )
    floor = (sequence_floors or {}).get(channel)
    if floor is not None and sequence < floor and pinned_release is None:
        raise SpecRefusedError(
            ROLLBACK,
            f"spec sequence {sequence} of channel {channel!r} is older than sequence {floor}"
            " already accepted (rollback)",
        )
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
