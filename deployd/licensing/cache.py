"""A per-process memory of licenses already verified, so a poll does not pay for a signature check.

Keyed by the SHA-256 of the token (the raw token is not kept): the license's own `token_hash`, so
the key costs no memory of its own. Bounded by an estimate of the memory its entries take
(`max_bytes`) as well as by their number (`maxsize`), oldest dropped first: a fleet of 100,000
licenses fits in a few tens of MB (docs/performance.md, *Where a poll's time goes*).

An entry never outlives the license's `exp` (plus leeway), is not used before its `nbf`, and a hit
is still checked against the revocation list on every use, so a revocation takes effect as soon as
the process learns of it. Entries are dropped when the verifier's key ring is replaced (a key id
retired or a key changed), so a retired key stops its licenses as it does without the cache.
Failures are never cached: an invalid token is verified (and refused) every time.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from deployd.errors import LicenseError
from deployd.licensing.tokens import (
    MAX_TOKEN_BYTES,
    LicenseVerifier,
    VerifiedLicense,
    token_hash,
)

# What a dict slot and its hash table share cost per entry, besides the objects themselves.
SLOT_BYTES = 100
DEFAULT_MAX_BYTES = 128 * 1024 * 1024


class CachedLicenseVerifier:
    def __init__(
        self,
        verifier: LicenseVerifier,
        *,
        maxsize: int = 1_000_000,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.verifier = verifier
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.clock = clock
        # token hash -> license, oldest first (a dict keeps insertion order)
        self._entries: dict[str, VerifiedLicense] = {}
        self.bytes = 0  # the estimated memory of the entries (`entry_bytes`)
        self._lock = threading.Lock()
        # The key ring the entries were verified with: a new ring (a key retired or replaced)
        # empties the cache before its next answer.
        self._keyring = verifier.keyring
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0

    def _forget_keyring(self) -> None:
        """Drop every entry: they were verified with a key ring that is no longer the one."""
        with self._lock:
            self._entries.clear()
            self.bytes = 0
            self._keyring = self.verifier.keyring

    def verify(self, unverified_token: str | None) -> VerifiedLicense:
        """Same contract as `LicenseVerifier.verify`, answered from memory when it safely can."""
        if not unverified_token or len(unverified_token) > MAX_TOKEN_BYTES:
            return self.verifier.verify(unverified_token)
        key = _key(unverified_token)
        license = self._remembered(key)
        if license is not None:
            self.hits += 1
            if self.verifier.is_revoked(license.jti):
                raise LicenseError(
                    "revoked", f"license {license.jti!r} has been revoked", claims=license.claims
                )
            return license
        self.misses += 1
        keyring = self.verifier.keyring
        license = self.verifier.verify(unverified_token)
        if self.verifier.keyring is keyring:  # not verified with a ring replaced meanwhile
            self._remember(license)
        return license

    def _remember(self, license: VerifiedLicense) -> None:
        # The license's token_hash is the key `verify` looks it up by: one string serves both.
        key, size = license.token_hash, entry_bytes(license)
        with self._lock:
            replaced = self._entries.pop(key, None)
            if replaced is not None:
                self.bytes -= entry_bytes(replaced)
            self._entries[key] = license
            self.bytes += size
            while self._entries and (
                len(self._entries) > self.maxsize or self.bytes > self.max_bytes
            ):
                oldest = next(iter(self._entries))
                self.bytes -= entry_bytes(self._entries.pop(oldest))

    def lookup(self, unverified_token: str) -> VerifiedLicense | None:
        """The license when `verify` would answer it from memory and accept it; else None.

        Never verifies a signature: None means "ask `verify`" (a token not seen before, or past
        its exp or before its nbf, or revoked). Raises what the revocation check raises (a
        revocation list too stale to trust).
        """
        if not unverified_token or len(unverified_token) > MAX_TOKEN_BYTES:
            return None
        license = self._remembered(_key(unverified_token))
        if license is None or self.verifier.is_revoked(license.jti):
            return None
        self.hits += 1
        return license

    def _remembered(self, key: str) -> VerifiedLicense | None:
        if self.verifier.keyring is not self._keyring:
            self._forget_keyring()
            return None
        license = self._entries.get(key)
        return license if license is not None and self._still_valid(license) else None

    def _still_valid(self, license: VerifiedLicense) -> bool:
        now = self.clock()
        leeway = self.verifier.leeway
        if now > license.expires_at + leeway:
            return False
        return license.not_before is None or now >= license.not_before - leeway


def _key(unverified_token: str) -> str:
    # token_hash encodes with surrogatepass: a JSON body can carry lone surrogates; the verifier
    # refuses them as malformed, and must get the chance to.
    return token_hash(unverified_token)


def entry_bytes(license: VerifiedLicense) -> int:
    """An estimate, on the high side, of the memory one remembered license takes: the license,
    its claims and their values, and a dict slot. Interned strings shared by many licenses (the
    issuer, claim names in nested claims, channel names) are counted in full for each, so the
    estimate errs high."""
    return (
        SLOT_BYTES
        + sys.getsizeof(license)
        + sys.getsizeof(license.token_hash)
        + sys.getsizeof(license.channels)
        + _claims_bytes(license.claims)
    )


def _claims_bytes(claims: dict[str, Any]) -> int:
    """Every container, name and value of the claims, however deeply nested (walked without
    recursion: a signed license may nest its free claims deeper than the recursion limit)."""
    total = 0
    pending: list[Any] = [claims]
    while pending:
        value = pending.pop()
        total += sys.getsizeof(value)
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return total
