"""Licenses: signed JWTs naming a customer and the channels it may follow; issuing and verifying.

Raw input is an `unverified_token`; `LicenseVerifier.verify` is the only way to a `VerifiedLicense`,
so code holding one knows every check below has passed. Messages never contain the token: log
`mask(token)` or `token_hash(token)` instead.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import jwt

from deployd.channels import NAME_PATTERN
from deployd.errors import BadRequestError, ConfigError, LicenseError
from deployd.keyfiles import key_id_for, load_private_key_file
from deployd.licensing.keyring import (
    ALGORITHMS,
    KeyRing,
    LicensePrivateKey,
    LicensePublicKey,
    algorithm_for,
    is_dev_key,
)

MAX_TOKEN_BYTES = 8192
# Claims deployd sets itself; free entitlements (`seats`, `features`, ...) may not replace them.
RESERVED_CLAIMS = frozenset(
    {"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "channel", "channels"}
)
# JWS compact serialization: three unpadded base64url segments. The signature may be empty so an
# unsigned (`alg: none`) token is refused for its algorithm, which is what it is.
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Algorithm names are echoed in messages only when they look like one (a header is attacker input).
_ALG_NAME = re.compile(r"[A-Za-z0-9+-]{1,16}")
_DURATION = re.compile(r"(\d+)([smhdw])")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


MAX_INSTANCES_CLAIM = "maxInstances"


@dataclass(frozen=True, slots=True)
class VerifiedLicense:
    """A license whose signature, key, times, issuer, audience, claims and revocation were checked.

    `customer` is the `sub` claim; `claims` holds every claim, entitlements included.
    """

    token_hash: str
    jti: str
    customer: str
    channel: str
    channels: tuple[str, ...]
    issuer: str
    issued_at: int | None
    expires_at: int
    not_before: int | None
    kid: str
    claims: dict[str, Any]

    def may_read(self, channel: str) -> bool:
        """True when this license may ask for `channel`."""
        return channel in self.channels

    @property
    def max_instances(self) -> int | None:
        """The `maxInstances` claim (how many clusters may poll with this license's subject),
        when it is a positive whole number; None (no cap) otherwise."""
        value = self.claims.get(MAX_INSTANCES_CLAIM)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        return None


class LicenseVerifier:
    """Checks licenses against a key ring, an issuer, an optional audience and a revocation test.

    Pure: no I/O besides `is_revoked`, whose errors (store unreachable) propagate, so a caller
    decides whether to fail closed.
    """

    def __init__(
        self,
        keyring: KeyRing,
        *,
        issuer: str = "deployd",
        audience: str | None = None,
        leeway: int = 30,
        is_revoked: Callable[[str], bool] = lambda jti: False,
    ) -> None:
        if not issuer:
            raise ConfigError("a license issuer is required")
        if leeway < 0:
            raise ConfigError("license leeway must not be negative")
        self.keyring = keyring
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.is_revoked = is_revoked

    def verify(self, unverified_token: str | None) -> VerifiedLicense:
        """Return the verified license or raise LicenseError with the first failing check's code.

        Order: missing, malformed (size, then structure), algorithm_not_allowed (header alg),
        unknown_key / key_retired (kid), algorithm_not_allowed (alg vs key type), bad_signature,
        missing_claim (exp), expired, not_yet_valid, wrong_issuer, wrong_audience (only when an
        audience is configured), missing_claim (sub, jti, channel), revoked.
        """
        if unverified_token is None or unverified_token == "":
            raise LicenseError("missing", "no license was given")
        token = _well_formed(unverified_token)
        header = _unverified_header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALGORITHMS:
            named = isinstance(alg, str) and _ALG_NAME.fullmatch(alg)
            what = f"algorithm {alg!r}" if named else "the license's algorithm"
            raise LicenseError(
                "algorithm_not_allowed",
                f"{what} is not allowed: licenses are signed with {', '.join(ALGORITHMS)}",
            )
        if "kid" not in header:
            raise LicenseError("unknown_key", "the license does not name its signing key (kid)")
        key = self.keyring.get(header["kid"])
        if alg != key.alg:
            raise LicenseError(
                "algorithm_not_allowed",
                f"the license says {alg}, but key {key.kid!r} is an {key.alg} key",
            )
        claims = _shared_strings(self._decode(token, key.public_key, key.alg))
        try:
            customer = _required_string(claims, "sub")
            jti = _required_string(claims, "jti")
            channel = _required_string(claims, "channel")
            channels = _channels(claims, channel)
            if self.is_revoked(jti):
                raise LicenseError("revoked", f"license {jti!r} has been revoked")
        except LicenseError as e:
            raise LicenseError(e.code, e.message, claims=claims) from e
        return VerifiedLicense(
            token_hash=token_hash(token),
            jti=jti,
            customer=customer,
            channel=channel,
            channels=channels,
            issuer=claims["iss"],
            issued_at=_optional_time(claims, "iat"),
            expires_at=int(claims["exp"]),
            not_before=_optional_time(claims, "nbf"),
            kid=key.kid,
            claims=claims,
        )

    def _decode(self, token: str, public_key: LicensePublicKey, alg: str) -> dict[str, Any]:
        """Signature, then exp (required), nbf/iat, iss and aud, with pyjwt doing the checking.

        A failed claim check carries the claims (pyjwt checks claims only once the signature
        verified); a bad signature carries none.
        """
        try:
            return self._decode_checked(token, public_key, alg)
        except LicenseError as e:
            if e.code == "bad_signature":
                raise
            try:
                signed = jwt.decode(token, options={"verify_signature": False})
            except jwt.PyJWTError:
                raise e from None
            raise LicenseError(e.code, e.message, claims=signed) from e

    def _decode_checked(self, token: str, public_key: LicensePublicKey, alg: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                public_key,
                algorithms=[alg],
                options={
                    "verify_signature": True,
                    # sub, jti and channel are required too, but checked after iss and aud (the
                    # contract's order); pyjwt checks everything in `require` first.
                    "require": ["exp"],
                    "verify_exp": True,
                    "verify_nbf": True,
                    "verify_iat": True,
                    "verify_iss": True,
                    "verify_aud": self.audience is not None,
                    "strict_aud": False,
                    "verify_sub": True,
                    "verify_jti": True,
                    "enforce_minimum_key_length": True,
                },
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
            )
        except jwt.InvalidSignatureError as e:
            raise LicenseError("bad_signature", "the license's signature does not verify") from e
        except jwt.ExpiredSignatureError as e:
            raise LicenseError("expired", "the license has expired") from e
        except jwt.ImmatureSignatureError as e:
            raise LicenseError("not_yet_valid", "the license is not valid yet") from e
        except jwt.InvalidIssuerError as e:
            raise LicenseError(
                "wrong_issuer", f"the license was not issued by {self.issuer!r}"
            ) from e
        except jwt.InvalidAudienceError as e:
            raise LicenseError(
                "wrong_audience", f"the license is not meant for audience {self.audience!r}"
            ) from e
        except jwt.MissingRequiredClaimError as e:
            raise LicenseError(
                "missing_claim", f"the license lacks the required {e.claim!r} claim"
            ) from e
        except jwt.exceptions.InvalidSubjectError as e:
            raise LicenseError("malformed", "the license's 'sub' claim must be a string") from e
        except jwt.exceptions.InvalidJTIError as e:
            raise LicenseError("malformed", "the license's 'jti' claim must be a string") from e
        except jwt.InvalidIssuedAtError as e:
            raise LicenseError("malformed", "the license's 'iat' claim must be a number") from e
        except jwt.PyJWTError as e:
            raise LicenseError(
                "malformed",
                "the license's claims are not a JSON object with numeric 'exp' and 'nbf'",
            ) from e


# Claims whose values repeat across a fleet's licenses (one issuer, a few channels and audiences):
# one copy of each such string is kept per process instead of one per verified license.
_REPEATED_CLAIMS = frozenset({"iss", "aud", "channel", "channels"})


def _shared_strings(claims: dict[str, Any]) -> dict[str, Any]:
    """`claims`, equal, with its names and repeated values interned (`sys.intern`): a worker
    remembering 100,000 licenses keeps one "iss", one "stable", ... instead of 100,000 each."""
    return {
        sys.intern(name): _shared(value) if name in _REPEATED_CLAIMS else value
        for name, value in claims.items()
    }


def _shared(value: Any) -> Any:
    if isinstance(value, str):
        return sys.intern(value)
    if isinstance(value, list):
        return [sys.intern(item) if isinstance(item, str) else item for item in value]
    return value


def _well_formed(unverified_token: Any) -> str:
    """The token, if it is a string of at most MAX_TOKEN_BYTES in JWS compact form."""
    if not isinstance(unverified_token, str):
        raise LicenseError("malformed", "the license is not a string")
    if len(unverified_token) > MAX_TOKEN_BYTES:
        raise LicenseError("malformed", f"the license is longer than {MAX_TOKEN_BYTES} bytes")
    if not unverified_token.isascii() or not _COMPACT_JWS.fullmatch(unverified_token):
        raise LicenseError(
            "malformed", "the license is not a JWT (three base64url parts separated by dots)"
        )
    return unverified_token


def _unverified_header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as e:
        raise LicenseError("malformed", "the license's header or parts cannot be decoded") from e


def _required_string(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    if value is None or value == "":
        raise LicenseError("missing_claim", f"the license lacks the required {name!r} claim")
    if not isinstance(value, str):
        raise LicenseError("malformed", f"the license's {name!r} claim must be a string")
    return value


def _channels(claims: Mapping[str, Any], channel: str) -> tuple[str, ...]:
    """The `channels` claim (default: just `channel`), which must include `channel`."""
    value = claims.get("channels")
    if value is None:
        return (channel,)
    if not isinstance(value, list) or not all(isinstance(c, str) and c for c in value):
        raise LicenseError(
            "malformed", "the license's 'channels' claim must be a list of channel names"
        )
    if channel not in value:
        raise LicenseError(
            "malformed", f"the license's channel {channel!r} is not among its 'channels'"
        )
    return tuple(value)


def _optional_time(claims: Mapping[str, Any], name: str) -> int | None:
    # pyjwt has already checked these convert to int.
    return int(claims[name]) if claims.get(name) is not None else None


def issue_license(
    private_key_path: str | Path,
    *,
    customer: str,
    channel: str,
    channels: Iterable[str] | None = None,
    expires_in: timedelta,
    claims: Mapping[str, Any] | None = None,
    issuer: str = "deployd",
    audience: str | None = None,
    now: datetime | None = None,
    warn: list[str] | None = None,
) -> str:
    """Sign a license with the private key file (kid = file stem, algorithm from the key type).

    Claims: iss, sub (= customer), jti (random 128-bit hex), iat (= now), exp (= now +
    expires_in), channel, channels (default [channel]), aud when given, then `claims`, which may
    not use a reserved name. Key file problems raise KeyFileError; readable-by-others warnings are
    appended to `warn`; bad arguments raise BadRequestError.
    """
    if not customer or not isinstance(customer, str):
        raise BadRequestError("a customer id is required")
    if not channel or not isinstance(channel, str):
        raise BadRequestError("a channel is required")
    allowed = list(dict.fromkeys(channels)) if channels is not None else [channel]
    if channel not in allowed:
        raise BadRequestError(f"channel {channel!r} must be one of the license's channels")
    for name in allowed:
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise BadRequestError(
                f"{name!r} can never be a channel's name: lowercase letters, digits and '-',"
                " up to 63, starting with a letter or digit"
            )
    if expires_in <= timedelta(0):
        raise BadRequestError("a license must expire in the future")
    reserved = sorted(RESERVED_CLAIMS.intersection(claims or {}))
    if reserved:
        raise BadRequestError(f"claims {', '.join(reserved)} are reserved and set by deployd")
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise BadRequestError("now must be timezone-aware")

    path = Path(private_key_path)
    kid = key_id_for(path)
    permission_warnings: list[str] = []
    private_key = load_private_key_file(path, warn=permission_warnings)
    # keys/dev.key is public in the repository and git cannot keep it 0600: a warning about who
    # can read it would say nothing (the development key is refused in production instead).
    if warn is not None and not is_dev_key(private_key.public_key()):
        warn.extend(permission_warnings)
    alg = algorithm_for(private_key.public_key(), source=path.name)
    payload: dict[str, Any] = {
        "iss": issuer,
        "sub": customer,
        "jti": secrets.token_hex(16),
        "iat": int(now.timestamp()),
        "exp": int((now + expires_in).timestamp()),
        "channel": channel,
        "channels": allowed,
    }
    if audience is not None:
        payload["aud"] = audience
    payload.update(claims or {})
    # algorithm_for accepted its public half, so it is one of the LicensePrivateKey types.
    signing_key = cast(LicensePrivateKey, private_key)
    token = jwt.encode(payload, signing_key, algorithm=alg, headers={"kid": kid})
    if len(token) > MAX_TOKEN_BYTES:
        raise BadRequestError(
            f"the license would be {len(token)} bytes; servers refuse licenses over"
            f" {MAX_TOKEN_BYTES} bytes, so use fewer or smaller claims"
        )
    return token


def parse_duration(text: str) -> timedelta:
    """A positive duration like "30d", "12h", "90m", "3600s" or "2w"; BadRequestError otherwise."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise BadRequestError(
            f"duration {text!r} must be a positive number followed by s, m, h, d or w (like 30d)"
        )
    try:
        return timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError as e:
        raise BadRequestError(f"duration {text!r} is too long") from e


def token_hash(token: str) -> str:
    """The sha256 hex digest of the token: an identifier that reveals nothing of it."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def mask(token: str) -> str:
    """A stand-in safe for logs: "lic…" and the first 8 hex digits of the token's sha256."""
    return f"lic…{token_hash(token)[:8]}"
