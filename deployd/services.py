"""The objects one server process works with, built once per app and shared by every view."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import current_app

from deployd.config import Settings
from deployd.errors import ConfigError
from deployd.keys import KeyRing
from deployd.license_cache import CachedLicenseVerifier
from deployd.licenses import LicenseVerifier, VerifiedLicense
from deployd.ratelimit import RateLimiter
from deployd.refresher import Refresher
from deployd.signing import SpecSigner, key_id_for, load_public_key_file, public_jwk
from deployd.specs import SpecCache
from deployd.state import ServerState
from deployd.store import Store

logger = logging.getLogger(__name__)


@dataclass
class Services:
    settings: Settings
    store: Store
    state: ServerState
    keyring: KeyRing
    verifier: CachedLicenseVerifier
    signer: SpecSigner
    specs: SpecCache
    extra_spec_keys: dict[str, Any] = field(default_factory=dict)
    license_limiter: RateLimiter | None = None
    address_limiter: RateLimiter | None = None
    refresher: Refresher | None = None

    def limit_address(self, address: str | None) -> None:
        """Count a request from `address`; raise RateLimitedError past the per-address limit."""
        if self.address_limiter is not None:
            self.address_limiter.hit(_address_key(address))

    def limit_license(self, license: VerifiedLicense) -> None:
        """Count a request made with `license`; raise RateLimitedError past its limit."""
        if self.license_limiter is not None:
            self.license_limiter.hit(_license_key(license))

    def address_allowed(self, address: str | None) -> bool:
        """Whether `limit_address` would let a request from `address` through. Counts nothing."""
        return self.address_limiter is None or self.address_limiter.allows(_address_key(address))

    def license_allowed(self, license: VerifiedLicense) -> bool:
        """Whether `limit_license` would let a request with `license` through. Counts nothing."""
        return self.license_limiter is None or self.license_limiter.allows(_license_key(license))

    def count_request(self, address: str | None, license: VerifiedLicense | None) -> None:
        """Count a request the two checks above allowed, as `limit_address` and `limit_license`
        would have."""
        if self.address_limiter is not None:
            self.address_limiter.count(_address_key(address))
        if license is not None and self.license_limiter is not None:
            self.license_limiter.count(_license_key(license))

    def verify_license(self, unverified_token: str) -> VerifiedLicense:
        return self.verifier.verify(unverified_token)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        keys = [public_jwk(self.signer.kid, self.signer.public_key, role="spec")]
        keys += [public_jwk(kid, key, role="spec") for kid, key in self.extra_spec_keys.items()]
        keys += self.keyring.jwks()
        return {"keys": keys}


def build_services(
    settings: Settings, store: Store, *, worker_store: Store | None = None
) -> Services:
    """The services of one app. `worker_store` (default `store`) is the same store on the short
    timeouts of the background refresh: the state and the rate limiters use it."""
    worker_store = worker_store or store
    warnings: list[str] = []
    if settings.signing_key:
        signer = SpecSigner.from_file(settings.signing_key, warn=warnings)
    elif settings.embedded:
        signer = SpecSigner.dev_key(settings.state_dir)
        logger.warning(
            "signing specs with the development key in %s; set DEPLOYD_SIGNING_KEY in production",
            settings.state_dir,
        )
    else:
        raise ConfigError(
            "DEPLOYD_SIGNING_KEY must name an Ed25519 private key file when REDIS_URL is set:"
            " every worker and replica has to sign with the same key"
        )
    for message in warnings:
        logger.warning("%s", message)
    extra = {key_id_for(p): load_public_key_file(p) for p in settings.extra_signing_keys}
    if not Path(settings.keys_dir).is_dir():
        raise ConfigError(f"license key directory {settings.keys_dir!r} does not exist")
    keyring = KeyRing.from_dir(settings.keys_dir, retired=settings.retired_key_ids)
    state = ServerState(
        worker_store,
        refresh_interval=settings.refresh_interval,
        revocation_max_staleness=settings.revocation_max_staleness,
        max_channels=settings.channel_cache_size,
        auto_refresh=False,  # the refresher below refreshes, off the request path
    )
    verifier = CachedLicenseVerifier(
        LicenseVerifier(
            keyring,
            issuer=settings.issuer,
            audience=settings.audience,
            leeway=settings.leeway_seconds,
            is_revoked=state.is_revoked,
        ),
        maxsize=settings.license_cache_size,
    )
    specs = SpecCache(
        signer,
        window_seconds=settings.spec_window_seconds,
        expiry_windows=settings.spec_expiry_windows,
    )
    services = Services(settings, store, state, keyring, verifier, signer, specs, extra)
    tasks = [state.background_round]
    if settings.rate_limit_enabled:
        processes = settings.rate_limit_processes
        services.license_limiter = RateLimiter(
            worker_store.add_counts, limit=settings.rate_limit_per_minute, processes=processes
        )
        services.address_limiter = RateLimiter(
            worker_store.add_counts,
            limit=settings.rate_limit_per_address_per_minute,
            processes=processes,
        )
        tasks += [services.license_limiter.sync, services.address_limiter.sync]
    services.refresher = Refresher(tasks, interval=settings.refresh_interval)
    for limiter in (services.license_limiter, services.address_limiter):
        if limiter is not None:
            limiter.wake = services.refresher.wake
    return services


def _address_key(address: str | None) -> str:
    return f"addr:{address or '-'}"


def _license_key(license: VerifiedLicense) -> str:
    return f"license:{license.jti}"


def services() -> Services:
    """The current app's services (inside a request or app context)."""
    return current_app.extensions["deployd"]
