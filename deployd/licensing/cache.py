"""A per-process memory of licenses already verified, so a poll does not pay for a signature check.

Keyed by the SHA-256 of the token (the raw token is not kept). An entry never outlives the
license's `exp` (plus leeway), is not used before its `nbf`, and a hit is still checked against the
revocation list on every use, so a revocation takes effect as soon as the process learns of it.
Failures are never cached: an invalid token is verified (and refused) every time.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from deployd.errors import LicenseError
from deployd.licensing.tokens import MAX_TOKEN_BYTES, LicenseVerifier, VerifiedLicense


class CachedLicenseVerifier:
    def __init__(
        self,
        verifier: LicenseVerifier,
        *,
        maxsize: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.verifier = verifier
        self.maxsize = maxsize
        self.clock = clock
        self._entries: OrderedDict[bytes, VerifiedLicense] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

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
        license = self.verifier.verify(unverified_token)
        with self._lock:
            self._entries[key] = license
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
        return license

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

    def _remembered(self, key: bytes) -> VerifiedLicense | None:
        license = self._entries.get(key)
        return license if license is not None and self._still_valid(license) else None

    def _still_valid(self, license: VerifiedLicense) -> bool:
        now = self.clock()
        leeway = self.verifier.leeway
        if now > license.expires_at + leeway:
            return False
        return license.not_before is None or now >= license.not_before - leeway


def _key(unverified_token: str) -> bytes:
    # surrogatepass: a JSON body can carry lone surrogates; the verifier refuses them as
    # malformed, and must get the chance to.
    return hashlib.sha256(unverified_token.encode("utf-8", "surrogatepass")).digest()
