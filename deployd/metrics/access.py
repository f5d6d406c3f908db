"""Who may read the metrics, and whether this server serves them at all.

DEPLOYD_METRICS says whether `/metrics` is served:
- ``off``: never (and nothing is counted on the poll path);
- ``open``: without a token, wherever it runs (an explicit choice: the network must protect it);
- ``on``: yes; a server on Redis (production) then needs DEPLOYD_METRICS_TOKEN or
  DEPLOYD_METRICS_PORT, or it refuses to start (`check_metrics_settings`);
- ``auto`` (unset): the embedded development server serves them; a server on Redis serves them
  only with DEPLOYD_METRICS_TOKEN or DEPLOYD_METRICS_PORT set.

With DEPLOYD_METRICS_PORT set, the metrics are served on that port only (by the gunicorn master,
deployd.metrics.standalone), never on the API's port. A token, when set, is required wherever they
are served: ``Authorization: Bearer <token>``, compared in constant time.
"""

from __future__ import annotations

import hmac

from deployd.errors import ConfigError, MetricsAuthError
from deployd.server.settings import Settings


def check_metrics_settings(settings: Settings) -> None:
    """Refuse to serve metrics openly from a production server unless explicitly allowed."""
    if settings.metrics != "on" or settings.embedded:
        return
    if settings.metrics_token is None and settings.metrics_port is None:
        raise ConfigError(
            "DEPLOYD_METRICS=on with REDIS_URL set would serve /metrics to anyone: set"
            " DEPLOYD_METRICS_TOKEN (a bearer token for scrapers), or DEPLOYD_METRICS_PORT (a"
            " separate port your network protects), or DEPLOYD_METRICS=open to allow it"
        )


def metrics_enabled(settings: Settings) -> bool:
    """Whether this server counts and serves metrics."""
    if settings.metrics == "off":
        return False
    if settings.metrics == "auto" and not settings.embedded:
        return settings.metrics_token is not None or settings.metrics_port is not None
    return True


def served_on_api_port(settings: Settings) -> bool:
    """Whether `/metrics` is a route of the API's port (not when a metrics port is set)."""
    return metrics_enabled(settings) and settings.metrics_port is None


def check_token(expected: str | None, authorization: str | None) -> None:
    """Raise MetricsAuthError unless `authorization` carries the bearer token `expected` (no
    token configured: anyone may read). Never logs or echoes either value."""
    if expected is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.encode()
    ):
        raise MetricsAuthError("reading the metrics needs 'Authorization: Bearer <metrics token>'")
