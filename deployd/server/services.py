"""The objects one server process works with, built once per app and shared by every view."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import current_app

from deployd.channels import Channel
from deployd.customers import CustomerBook, CustomerRecord
from deployd.errors import ConfigError, StoreUnavailableError
from deployd.events import INSTANCE, configure_log, record_event
from deployd.events.delivery import WebhookDeliverer
from deployd.events.webhooks import webhook_config
from deployd.fleet.model import CheckIn
from deployd.fleet.service import Fleet
from deployd.keyfiles import key_id_for, load_public_key_file
from deployd.licensing.cache import CachedLicenseVerifier
from deployd.licensing.keyring import KeyRing, is_dev_key
from deployd.licensing.tokens import LicenseVerifier, VerifiedLicense
from deployd.metrics.access import check_metrics_settings, metrics_enabled
from deployd.metrics.hooks import SpecCounter
from deployd.metrics.rounds import MetricsRound
from deployd.publishers import load_tokens_file
from deployd.rollouts.halts import Rollouts
from deployd.rollouts.queue import ReportQueue
from deployd.server.ratelimit import RateLimiter
from deployd.server.refresher import Refresher
from deployd.server.settings import DEV_KEYS_DIR, Settings, exit_on_config_error, settings_from_env
from deployd.server.view import ServerState
from deployd.specs.rendering import SpecCache
from deployd.specs.signing import SpecSigner, public_jwk
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
    customer_book: CustomerBook | None = None
    webhooks: WebhookDeliverer | None = None  # events: set when webhooks are configured
    fleet: Fleet | None = None  # None: DEPLOYD_FLEET_RECORDING is off
    reports: ReportQueue | None = None
    rollouts: Rollouts | None = None
    spec_counter: SpecCounter | None = None  # None: metrics are off (deployd.metrics.access)
    metrics_round: MetricsRound | None = None

    def customer_record(self, subject: str | None) -> CustomerRecord | None:
        """The customer record of license subject `subject`, from this worker's memory."""
        if subject is None or self.customer_book is None:
            return None
        return self.customer_book.get(subject)

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


@dataclass(frozen=True)
class ServerKeys:
    """The keys a server works with, loaded and checked at start, and what to warn about them."""

    signer: SpecSigner
    extra_spec_keys: dict[str, Any]
    keyring: KeyRing
    warnings: tuple[str, ...]


def load_keys(settings: Settings) -> ServerKeys:
    """Load the response-signing key, the extra signing keys and the license key ring.

    Raises ConfigError for a missing or unusable key and, on a server on Redis, for any trust in
    the public development key (DEPLOYD_KEYS_DIR unset, or the key itself under any file name or
    role) unless DEPLOYD_ALLOW_DEV_KEY allows it, which then becomes a warning.
    """
    warnings: list[str] = []
    signer = _load_signer(settings, warnings)
    extra = {key_id_for(p): load_public_key_file(p) for p in settings.extra_signing_keys}
    if not settings.embedded and settings.keys_dir == DEV_KEYS_DIR:
        _allow_dev_key(
            settings,
            f"DEPLOYD_KEYS_DIR is unset (or {DEV_KEYS_DIR!r}), so licenses are checked against"
            f" {DEV_KEYS_DIR}/, the development key's directory",
            warnings,
        )
    if not Path(settings.keys_dir).is_dir():
        raise ConfigError(f"license key directory {settings.keys_dir!r} does not exist")
    keyring = KeyRing.from_dir(settings.keys_dir, retired=settings.retired_key_ids)
    if not settings.embedded:
        for use in _dev_key_uses(signer, extra, keyring):
            _allow_dev_key(settings, use, warnings)
    return ServerKeys(signer, extra, keyring, tuple(warnings))


def _load_signer(settings: Settings, warnings: list[str]) -> SpecSigner:
    if settings.signing_key:
        return SpecSigner.from_file(settings.signing_key, warn=warnings)
    if settings.embedded:
        warnings.append(
            f"signing specs with the development key in {settings.state_dir};"
            " set DEPLOYD_SIGNING_KEY in production"
        )
        return SpecSigner.dev_key(settings.state_dir)
    raise ConfigError(
        "DEPLOYD_SIGNING_KEY must name an Ed25519 private key file when REDIS_URL is set:"
        " every worker and replica has to sign with the same key"
    )


def _dev_key_uses(signer: SpecSigner, extra: dict[str, Any], keyring: KeyRing) -> list[str]:
    """Where the public development key is trusted, recognised by its material."""
    uses = [
        f"license key {kid!r} in DEPLOYD_KEYS_DIR is the development key (keys/dev.pub)"
        for kid in keyring.dev_key_ids()
    ]
    if is_dev_key(signer.public_key):
        uses.append(f"DEPLOYD_SIGNING_KEY ({signer.kid}) is the development key (keys/dev.key)")
    uses += [
        f"extra signing key {kid!r} in DEPLOYD_EXTRA_SIGNING_KEYS is the development key"
        " (keys/dev.pub)"
        for kid, key in extra.items()
        if is_dev_key(key)
    ]
    return uses


def _allow_dev_key(settings: Settings, use: str, warnings: list[str]) -> None:
    """Refuse `use` of the development key unless DEPLOYD_ALLOW_DEV_KEY says so; then warn."""
    risk = "the development key's private half is public, so anyone can sign with it"
    if not settings.allow_dev_key:
        raise ConfigError(
            f"{use}: {risk}; with REDIS_URL set, use your own keys"
            " (DEPLOYD_ALLOW_DEV_KEY=1 allows the development key, for test deployments only)"
        )
    warnings.append(f"DEPLOYD_ALLOW_DEV_KEY is set and {use}: {risk}")


def describe_keys(keys: ServerKeys) -> str:
    """The key ids and roles a server trusts, for its start-up log line; never key material."""

    def named(kid: str, public_key: Any, *details: str) -> str:
        marks = [*details] + (["the public development key"] if is_dev_key(public_key) else [])
        return f"{kid} ({', '.join(marks)})" if marks else kid

    licenses = [named(key.kid, key.public_key, key.alg) for key in keys.keyring.active]
    extra = [named(kid, key) for kid, key in keys.extra_spec_keys.items()]
    signer = keys.signer
    return (
        f"license keys: {', '.join(licenses) or 'none'};"
        f" retired license key ids: {', '.join(keys.keyring.retired) or 'none'};"
        f" response-signing key: {named(signer.kid, signer.public_key)};"
        f" extra signing keys: {', '.join(extra) or 'none'}"
    )


def check_configuration(settings: Settings) -> None:
    """Raise ConfigError for whatever `build_services` would refuse that is known without the
    store: the keys and the development-key policy, the license checks' settings, the publisher
    tokens file and the Redis URL. Logs nothing and connects to nothing, so the gunicorn master
    can run it once before any worker starts (gunicorn.conf.py)."""
    keys = load_keys(settings)
    _license_verifier(settings, keys.keyring, is_revoked=lambda jti: False)
    if settings.publisher_tokens_file:
        load_tokens_file(settings.publisher_tokens_file)
    webhook_config(settings)
    check_metrics_settings(settings)
    if settings.redis_url:
        from deployd.store.connect import parse_redis_url

        parse_redis_url(settings.redis_url)  # connects to nothing


def check_configuration_from_env(*, exit_code: int) -> None:
    """`check_configuration` of the environment's settings; a ConfigError is its one line on
    stderr and `SystemExit(exit_code)`, with no traceback."""
    with exit_on_config_error(exit_code):
        check_configuration(settings_from_env())


def _license_verifier(
    settings: Settings, keyring: KeyRing, *, is_revoked: Callable[[str], bool]
) -> LicenseVerifier:
    return LicenseVerifier(
        keyring,
        issuer=settings.issuer,
        audience=settings.audience,
        leeway=settings.leeway_seconds,
        is_revoked=is_revoked,
    )


def build_services(
    settings: Settings, store: Store, *, worker_store: Store | None = None
) -> Services:
    """The services of one app. `worker_store` (default `store`) is the same store on the short
    timeouts of the background refresh: the state and the rate limiters use it."""
    worker_store = worker_store or store
    check_metrics_settings(settings)
    keys = load_keys(settings)
    for message in keys.warnings:
        logger.warning("%s", message)
    logger.info("%s", describe_keys(keys))
    signer, extra, keyring = keys.signer, keys.extra_spec_keys, keys.keyring
    state = ServerState(
        worker_store,
        refresh_interval=settings.refresh_interval,
        revocation_max_staleness=settings.revocation_max_staleness,
        max_channels=settings.channel_cache_size,
        auto_refresh=False,  # the refresher below refreshes, off the request path
    )
    verifier = CachedLicenseVerifier(
        _license_verifier(settings, keyring, is_revoked=state.is_revoked),
        maxsize=settings.license_cache_size,
        max_bytes=settings.license_cache_mb * 1024 * 1024,
    )
    specs = SpecCache(
        signer,
        window_seconds=settings.spec_window_seconds,
        expiry_windows=settings.spec_expiry_windows,
        max_bytes=settings.spec_cache_mb * 1024 * 1024,
    )
    # A replaced store may reuse sequence numbers: nothing rendered from the old one is kept.
    state.add_reset_listener(specs.clear)
    state.add_reset_listener(verifier.clear)
    if not settings.embedded:
        warn_unless_persisted(store)
    services = Services(settings, store, state, keyring, verifier, signer, specs, extra)
    services.customer_book = CustomerBook(worker_store)
    state.add_reset_listener(services.customer_book.forget)
    tasks: list[Callable[[], bool]] = []
    if settings.fleet_recording:
        services.fleet = Fleet(worker_store, ttl_seconds=settings.instance_ttl_seconds)
        services.fleet.recorder.first_seen_hooks.append(
            lambda new: _instances_first_seen(worker_store, new)
        )
        # The view catches up before the state refresh, so a worker that sees a publish has
        # applied every check-in flushed before it (deployd/fleet/view.py).
        tasks += [services.fleet.flush, services.fleet.sync]
    services.rollouts = Rollouts(
        store, find_channel=lambda name: _compiled(state, name), known_halts=state.halted
    )
    services.reports = ReportQueue(
        worker_store,
        on_flushed=services.rollouts.check_policies,
        max_queued=settings.report_queue_size,
    )
    tasks += [state.background_round, services.customer_book.background_round]
    tasks += [services.reports.flush]
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
    tasks += _event_tasks(settings, services)
    if services.fleet is not None:
        tasks += [services.fleet.maintain]
    if metrics_enabled(settings):
        services.spec_counter = SpecCounter()
        services.metrics_round = MetricsRound(
            state,
            license_cache=verifier,
            spec_cache=specs,
            fleet_store=worker_store if services.fleet is not None else None,
        )
        tasks += [services.metrics_round.run]
    services.refresher = Refresher(tasks, interval=settings.refresh_interval)
    for limiter in (services.license_limiter, services.address_limiter):
        if limiter is not None:
            limiter.wake = services.refresher.wake
    return services


MIN_WEBHOOK_INTERVAL_SECONDS = 0.1


def _instances_first_seen(store: Store, new: list[CheckIn]) -> None:
    """An ``instance`` event for each instance the store saw for the first time (called from the
    background flush, never from a poll)."""
    for check_in in new:
        data = {"instance": check_in.key, "release": check_in.served}
        if check_in.agent_id is not None:
            data["agentInstanceId"] = check_in.agent_id
        record_event(store, INSTANCE, channel=check_in.channel, subject=check_in.subject, data=data)


def _event_tasks(settings: Settings, services: Services) -> list[Callable[[], bool]]:
    """Bound the event log; with webhooks configured, a refresher task that keeps this
    process's delivery thread running (deployd.events.delivery)."""
    configure_log(settings.events_max)
    webhooks = webhook_config(settings)
    if webhooks is None:
        return []
    # The holder looks for new events as often as workers look for publishes (at least 0.1 s).
    services.webhooks = WebhookDeliverer(
        services.store,
        webhooks,
        services.signer,
        interval=max(settings.refresh_interval, MIN_WEBHOOK_INTERVAL_SECONDS),
    )
    return [services.webhooks.ensure_running]


def _compiled(state: ServerState, name: str) -> Channel | None:
    """The channel `name` as this worker holds it (None when there is none)."""
    found = state.channel(name)
    return None if found is None else found[1]


_persistence_checked = False


def warn_unless_persisted(store: Store) -> None:
    """Log once per process, in one line, when the store keeps nothing across a restart (or
    cannot say)."""
    global _persistence_checked
    if _persistence_checked:
        return
    _persistence_checked = True
    try:
        persistence = store.persistence()
    except StoreUnavailableError as e:
        logger.warning("Redis persistence could not be checked: %s", e.message)
        return
    if not persistence.checked:
        logger.warning(
            "Redis persistence %s: make sure it keeps its data (AOF), or keep backups",
            persistence.description,
        )
    elif not persistence.persisted:
        logger.warning(
            "Redis persists nothing (%s): a restart loses every channel, revocation and"
            " publisher; turn on appendonly (docs/operating.md, Redis durability)",
            persistence.description,
        )
    else:
        logger.info("Redis persistence: %s", persistence.description)


def _address_key(address: str | None) -> str:
    return f"addr:{address or '-'}"


def _license_key(license: VerifiedLicense) -> str:
    return f"license:{license.jti}"


def services() -> Services:
    """The current app's services (inside a request or app context)."""
    found: Services = current_app.extensions["deployd"]
    return found
