"""Detached Ed25519 signatures over exact response bytes (key files: `deployd.keyfiles`).

Header format (contract): ``Deployd-Signature: keyid="<kid>", alg="ed25519", sig="<base64url>"``
where `sig` signs the response body bytes exactly as sent.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from deployd.errors import KeyFileError
from deployd.keyfiles import key_id_for, load_private_key_file, write_key_pair

_PARAM = re.compile(r'\s*([a-z]+)="([^"]*)"\s*(?:,|$)')


class SignatureError(Exception):
    """A signature header is missing, malformed, from an untrusted key, or does not verify."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class SpecSigner:
    """Signs response bodies with one Ed25519 private key."""

    kid: str
    private_key: Ed25519PrivateKey

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, warn: list[str] | None = None
    ) -> SpecSigner:
        key = load_private_key_file(path, warn=warn)
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(f"{Path(path).name}: the response-signing key must be Ed25519")
        return cls(key_id_for(path), key)

    @classmethod
    def dev_key(cls, state_dir: str | os.PathLike[str]) -> SpecSigner:
        """The development signing key in `state_dir`, generated on first use.

        Several processes may start at once: the first to create the file wins, the rest read it.
        """
        path = Path(state_dir) / "dev-signing.key"
        if not path.exists():
            try:
                write_key_pair(Ed25519PrivateKey.generate(), state_dir, "dev-signing")
            except FileExistsError:
                pass
        return cls.from_file(path)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def signature_header(self, body: bytes) -> str:
        return f'keyid="{self.kid}", alg="ed25519", sig="{b64url(self.private_key.sign(body))}"'


def parse_signature_header(value: str) -> tuple[str, bytes]:
    """Split a `Deployd-Signature` header into (key id, raw signature bytes)."""
    params: dict[str, str] = {}
    pos = 0
    value = value.strip()
    while pos < len(value):
        match = _PARAM.match(value, pos)
        if match is None:
            raise SignatureError("malformed", "signature header is malformed")
        params[match.group(1)] = match.group(2)
        pos = match.end()
    kid, alg, sig = params.get("keyid"), params.get("alg"), params.get("sig")
    if not kid or not sig:
        raise SignatureError("malformed", "signature header lacks keyid or sig")
    if alg != "ed25519":
        raise SignatureError("malformed", f"signature algorithm {alg!r} is not ed25519")
    try:
        raw = b64url_decode(sig)
    except ValueError as e:
        raise SignatureError("malformed", "signature is not base64url") from e
    return kid, raw


def verify_signature(
    header: str | None, body: bytes, trusted: Mapping[str, Ed25519PublicKey]
) -> str:
    """Check `header` signs `body` with one of the `trusted` keys; return the key id used."""
    if not header:
        raise SignatureError("missing", "response carries no Deployd-Signature header")
    kid, raw = parse_signature_header(header)
    key = trusted.get(kid)
    if key is None:
        raise SignatureError("unknown_key", f"response is signed by untrusted key id {kid!r}")
    try:
        key.verify(raw, body)
    except InvalidSignature as e:
        raise SignatureError("bad_signature", "response signature does not verify") from e
    return kid


def public_jwk(kid: str, public_key: PublicKeyTypes, *, role: str) -> dict[str, str]:
    """A JWK (RFC 7517/8037/7518) for an Ed25519, P-256 or RSA public key, tagged with its role."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    jwk: dict[str, str] = {"kid": kid, "use": "sig", "deployd_role": role}
    if isinstance(public_key, Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        jwk.update(kty="OKP", crv="Ed25519", alg="EdDSA", x=b64url(raw))
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        numbers = public_key.public_numbers()
        jwk.update(
            kty="EC",
            crv="P-256",
            alg="ES256",
            x=b64url(numbers.x.to_bytes(32, "big")),
            y=b64url(numbers.y.to_bytes(32, "big")),
        )
    elif isinstance(public_key, rsa.RSAPublicKey):
        rsa_numbers = public_key.public_numbers()
        n, e = rsa_numbers.n, rsa_numbers.e
        jwk.update(
            kty="RSA",
            alg="RS256",
            n=b64url(n.to_bytes((n.bit_length() + 7) // 8, "big")),
            e=b64url(e.to_bytes((e.bit_length() + 7) // 8, "big")),
        )
    else:
        raise KeyFileError(f"{kid}: unsupported public key type")
    return jwk
