"""License keys: the algorithms deployd accepts and the ring of public keys that checks licenses.

The server holds public keys only: `keys/<kid>.pub` (PEM), where the file stem is the key id a
license names in its `kid` header. Private `*.key` files next to them are never read by the server.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from deployd.errors import ConfigError, KeyFileError, LicenseError
from deployd.keyfiles import KEY_ID, key_id_for, load_public_key_file
from deployd.specs.signing import public_jwk

# The only license algorithms, each with the public key type it needs. Never `none`, never HMAC.
ALGORITHMS: dict[str, type] = {
    "EdDSA": Ed25519PublicKey,
    "ES256": ec.EllipticCurvePublicKey,
    "RS256": rsa.RSAPublicKey,
}
MIN_RSA_BITS = 2048
# New RSA keys get more than the minimum, so they stay acceptable as the floor rises.
NEW_RSA_BITS = 3072
# The fingerprint of keys/dev.pub, the development key whose private half is public in the
# repository: recognised by its material, so a renamed copy is the dev key too.
DEV_KEY_FINGERPRINT = "b1b044647db7a9821695fab0c0a01ff6df3e4dd212661f712100d49bf9fe2db8"

# The key types of `ALGORITHMS`: what a license key is once `algorithm_for` accepted it.
LicensePublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
LicensePrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def fingerprint(public_key: PublicKeyTypes) -> str:
    """SHA-256 hex of the key's DER SubjectPublicKeyInfo: the same key gives the same value
    whatever file or key id it comes under."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def is_dev_key(public_key: PublicKeyTypes) -> bool:
    """Whether `public_key` is the public development key (keys/dev.pub), under any name."""
    return fingerprint(public_key) == DEV_KEY_FINGERPRINT


def algorithm_for(public_key: PublicKeyTypes, *, source: str) -> str:
    """The one algorithm `public_key` signs licenses with; KeyFileError naming `source` otherwise.

    Ed25519 -> EdDSA, EC on P-256 -> ES256, RSA of at least `MIN_RSA_BITS` -> RS256.
    """
    if isinstance(public_key, Ed25519PublicKey):
        return "EdDSA"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if isinstance(public_key.curve, ec.SECP256R1):
            return "ES256"
        problem = f"EC key on curve {public_key.curve.name}: only P-256 (ES256) is accepted"
    elif isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size >= MIN_RSA_BITS:
            return "RS256"
        problem = f"RSA key of {public_key.key_size} bits: at least {MIN_RSA_BITS} are required"
    else:
        problem = f"{type(public_key).__name__}: license keys must be Ed25519, EC P-256 or RSA"
    raise KeyFileError(f"{source}: {problem}")


def generate_private_key(alg: str = "EdDSA") -> LicensePrivateKey:
    """A new private key for `alg` (one of `ALGORITHMS`)."""
    if alg == "EdDSA":
        return Ed25519PrivateKey.generate()
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=NEW_RSA_BITS)
    raise ConfigError(f"unsupported algorithm {alg!r}; choose one of {', '.join(ALGORITHMS)}")


@dataclass(frozen=True)
class RingKey:
    """One trusted license key: its id, the algorithm its type implies, the public key."""

    kid: str
    alg: str
    public_key: LicensePublicKey


class KeyRing:
    """The public keys licenses may be signed with, by key id, plus the ids that are retired.

    Lookups never touch the filesystem: every key is loaded (and checked) when the ring is built.
    """

    def __init__(self, keys: Iterable[RingKey], *, retired: Iterable[str] = ()) -> None:
        self._keys = {key.kid: key for key in keys}
        self._retired = frozenset(retired)

    @classmethod
    def from_dir(cls, path: str | os.PathLike[str], *, retired: Iterable[str] = ()) -> KeyRing:
        """Load every `*.pub` PEM file in `path` (key id = file stem); `*.key` files are ignored.

        Raises KeyFileError, naming the file, for a bad key id, an unreadable or non-PEM file, an
        unsupported key type or an RSA key under `MIN_RSA_BITS`.
        """
        directory = Path(path)
        if not directory.is_dir():
            raise KeyFileError(f"license key directory {str(directory)!r} does not exist")
        keys = []
        for pub in sorted(directory.glob("*.pub")):
            kid = key_id_for(pub)
            public_key = load_public_key_file(pub)
            alg = algorithm_for(public_key, source=pub.name)
            # algorithm_for raises for any type but those of LicensePublicKey.
            keys.append(RingKey(kid, alg, cast(LicensePublicKey, public_key)))
        return cls(keys, retired=retired)

    def get(self, kid: str) -> RingKey:
        """The active key `kid`; LicenseError `unknown_key` or `key_retired` otherwise."""
        if not isinstance(kid, str) or not KEY_ID.fullmatch(kid):
            raise LicenseError("unknown_key", "the license's key id (kid) is not a valid key id")
        if kid in self._retired:
            raise LicenseError(
                "key_retired", f"the license is signed by key {kid!r}, which has been retired"
            )
        key = self._keys.get(kid)
        if key is None:
            raise LicenseError("unknown_key", f"the license is signed by unknown key {kid!r}")
        return key

    @property
    def active(self) -> list[RingKey]:
        """The keys licenses may be signed with, by key id: the loaded ones not retired."""
        return [key for kid, key in sorted(self._keys.items()) if kid not in self._retired]

    @property
    def retired(self) -> list[str]:
        """The retired key ids, sorted (a retired id need not have a key file)."""
        return sorted(self._retired)

    def dev_key_ids(self) -> list[str]:
        """The ids under which an active key is the public development key (see `is_dev_key`)."""
        return [key.kid for key in self.active if is_dev_key(key.public_key)]

    def jwks(self) -> list[dict[str, str]]:
        """The active keys as JWKs tagged `"deployd_role": "license"` (for the JWKS endpoint)."""
        return [public_jwk(key.kid, key.public_key, role="license") for key in self.active]
