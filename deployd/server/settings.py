"""Server settings: an explicit table of environment variable -> setting -> coercer.

Only the variables named here are read; nothing else in the environment changes behaviour.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from typing import Any

from deployd.errors import ConfigError

# Where the license keys are read from when DEPLOYD_KEYS_DIR is unset: the checkout's `keys/`, which
# holds the public development key. Only the embedded development server may rely on it.
DEV_KEYS_DIR = "keys"


def _str_or_none(raw: str) -> str | None:
    return raw.strip() or None


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _positive_float(raw: str) -> float:
    value = float(raw)
    if value <= 0:
        raise ValueError("must be a positive number")
    return value


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("must be true or false")


# DEPLOYD_METRICS (deployd.metrics.access says what each means).
METRICS_MODES = ("auto", "on", "off", "open")


def _metrics_mode(raw: str) -> str:
    mode = raw.strip().lower() or "auto"
    if mode not in METRICS_MODES:
        raise ValueError(f"must be one of {', '.join(METRICS_MODES)}")
    return mode


def _port_or_none(raw: str) -> int | None:
    if not raw.strip():
        return None
    port = int(raw)
    if not 0 < port < 65536:
        raise ValueError("must be a port number (1-65535)")
    return port


@dataclass(frozen=True)
class Settings:
    """Everything the server can be told. Defaults are the embedded development setup."""

    redis_url: str | None = None
    channels_dir: str = "channels"
    keys_dir: str = DEV_KEYS_DIR
    retired_key_ids: tuple[str, ...] = ()
    allow_dev_key: bool = False
    issuer: str = "deployd"
    audience: str | None = None
    leeway_seconds: int = 30
    signing_key: str | None = None
    extra_signing_keys: tuple[str, ...] = ()
    state_dir: str = ".deployd"
    anonymous_channel: str | None = None
    publisher_tokens_file: str | None = None
    spec_window_seconds: int = 86400
    spec_expiry_windows: int = 3
    refresh_interval: float = 0.5
    revocation_max_staleness: float = 300.0
    ready_max_staleness: float = 10.0
    max_body_bytes: int = 1_048_576
    rate_limit_per_minute: int = 60
    rate_limit_per_address_per_minute: int = 1200
    rate_limit_enabled: bool = True
    rate_limit_processes: int = 1
    trusted_proxies: int = 0
    license_cache_size: int = 1_000_000
    license_cache_mb: int = 128
    channel_cache_size: int = 1000
    spec_cache_mb: int = 64
    report_queue_size: int = 10_000
    log_level: str = "INFO"
    # --- events: the event log and webhooks ---
    events_max: int = 10_000
    webhook_urls: tuple[str, ...] = ()
    webhook_events: tuple[str, ...] = ()
    webhook_allow_http: bool = False
    webhook_attempts: int = 5
    webhook_backoff: float = 1.0
    fleet_recording: bool = True
    instance_ttl_seconds: int = 7 * 86400
    # --- metrics (deployd.metrics) ---
    metrics: str = "auto"
    metrics_token: str | None = field(default=None, repr=False)  # a secret: never printed
    metrics_port: int | None = None

    @property
    def embedded(self) -> bool:
        """True when no Redis is configured: the in-process store seeded from `channels_dir`."""
        return self.redis_url is None


# env var -> (setting, coercer). The configuration table in docs/operating.md mirrors this list.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any]]] = {
    "REDIS_URL": ("redis_url", _str_or_none),
    "DEPLOYD_CHANNELS_DIR": ("channels_dir", str),
    "DEPLOYD_KEYS_DIR": ("keys_dir", str),
    "DEPLOYD_RETIRED_KEYS": ("retired_key_ids", _csv),
    "DEPLOYD_ALLOW_DEV_KEY": ("allow_dev_key", _bool),
    "DEPLOYD_ISSUER": ("issuer", str),
    "DEPLOYD_AUDIENCE": ("audience", _str_or_none),
    "DEPLOYD_LEEWAY_SECONDS": ("leeway_seconds", int),
    "DEPLOYD_SIGNING_KEY": ("signing_key", _str_or_none),
    "DEPLOYD_EXTRA_SIGNING_KEYS": ("extra_signing_keys", _csv),
    "DEPLOYD_STATE_DIR": ("state_dir", str),
    "DEPLOYD_ANONYMOUS_CHANNEL": ("anonymous_channel", _str_or_none),
    "DEPLOYD_PUBLISHER_TOKENS_FILE": ("publisher_tokens_file", _str_or_none),
    "DEPLOYD_SPEC_WINDOW_SECONDS": ("spec_window_seconds", _positive_int),
    "DEPLOYD_SPEC_EXPIRY_WINDOWS": ("spec_expiry_windows", _positive_int),
    "DEPLOYD_REFRESH_INTERVAL": ("refresh_interval", _positive_float),
    "DEPLOYD_REVOCATION_MAX_STALENESS": ("revocation_max_staleness", _positive_float),
    "DEPLOYD_READY_MAX_STALENESS": ("ready_max_staleness", _positive_float),
    "DEPLOYD_MAX_BODY_BYTES": ("max_body_bytes", _positive_int),
    "DEPLOYD_RATE_LIMIT_PER_MINUTE": ("rate_limit_per_minute", _positive_int),
    "DEPLOYD_RATE_LIMIT_PER_ADDRESS_PER_MINUTE": (
        "rate_limit_per_address_per_minute",
        _positive_int,
    ),
    "DEPLOYD_RATE_LIMIT": ("rate_limit_enabled", _bool),
    "DEPLOYD_RATE_LIMIT_PROCESSES": ("rate_limit_processes", _positive_int),
    "DEPLOYD_TRUSTED_PROXIES": ("trusted_proxies", int),
    "DEPLOYD_LICENSE_CACHE_SIZE": ("license_cache_size", _positive_int),
    "DEPLOYD_LICENSE_CACHE_MB": ("license_cache_mb", _positive_int),
    "DEPLOYD_CHANNEL_CACHE_SIZE": ("channel_cache_size", _positive_int),
    "DEPLOYD_SPEC_CACHE_MB": ("spec_cache_mb", _positive_int),
    "DEPLOYD_REPORT_QUEUE_SIZE": ("report_queue_size", _positive_int),
    "DEPLOYD_LOG_LEVEL": ("log_level", str),
    # --- events: the event log and webhooks ---
    "DEPLOYD_EVENTS_MAX": ("events_max", _positive_int),
    "DEPLOYD_WEBHOOK_URLS": ("webhook_urls", _csv),
    "DEPLOYD_WEBHOOK_EVENTS": ("webhook_events", _csv),
    "DEPLOYD_WEBHOOK_ALLOW_HTTP": ("webhook_allow_http", _bool),
    "DEPLOYD_WEBHOOK_ATTEMPTS": ("webhook_attempts", _positive_int),
    "DEPLOYD_WEBHOOK_BACKOFF": ("webhook_backoff", _positive_float),
    "DEPLOYD_FLEET_RECORDING": ("fleet_recording", _bool),
    "DEPLOYD_INSTANCE_TTL": ("instance_ttl_seconds", _positive_int),
    # --- metrics (deployd.metrics) ---
    "DEPLOYD_METRICS": ("metrics", _metrics_mode),
    "DEPLOYD_METRICS_TOKEN": ("metrics_token", _str_or_none),
    "DEPLOYD_METRICS_PORT": ("metrics_port", _port_or_none),
}


def settings_from_env(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build `Settings` from the variables in `ENVIRONMENT`, then apply `overrides`."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for var, (name, coerce) in ENVIRONMENT.items():
        if var not in environ:
            continue
        try:
            values[name] = coerce(environ[var])
        except ValueError as e:
            raise ConfigError(f"{var}: {e}") from e
    known = {f.name for f in fields(Settings)}
    unknown = set(overrides) - known
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
    return replace(Settings(**values), **overrides)


def config_error_line(error: ConfigError) -> str:
    """The one line a server that cannot start prints: `deployd: configuration error: ...`."""
    return "deployd: configuration error: " + " ".join(error.message.split())


@contextmanager
def exit_on_config_error(exit_code: int) -> Iterator[None]:
    """Turn a ConfigError raised inside into its one line on stderr and `SystemExit(exit_code)`,
    with no traceback: a server that cannot start says why once, in one line."""
    try:
        yield
    except ConfigError as e:
        print(config_error_line(e), file=sys.stderr, flush=True)
        raise SystemExit(exit_code) from None
