"""Hand-built JWTs for attack cases that pyjwt (rightly) refuses to produce."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from deployd.specs.signing import b64url


def segment(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": "deployd",
        "sub": "acme",
        "jti": "forged",
        "iat": now,
        "exp": now + 3600,
        "channel": "stable",
    }
    base.update(overrides)
    return base


def unsigned(kid: str = "test", **claim_overrides: Any) -> str:
    """An `alg: none` token."""
    header = segment({"alg": "none", "typ": "JWT", "kid": kid})
    return f"{header}.{segment(claims(**claim_overrides))}."


def hmac_with(secret: bytes, kid: str = "test", alg: str = "HS256") -> str:
    """An HMAC token keyed with `secret` (e.g. the public key's PEM: algorithm confusion)."""
    signing_input = f"{segment({'alg': alg, 'typ': 'JWT', 'kid': kid})}.{segment(claims())}"
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"
