"""The wire protocol between deployd and its clients: paths, header names and the timestamp format.

The server's routes, the CLI's remote target, the operator-side client (`deployd.client`) and the
benchmark all take these facts from here; docs/protocol.md describes them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

# Paths. A spec is polled at SPEC_PATH; a pinned release at SPEC_PATH + /release/<id>.
SPEC_PATH = "/api/v1/operator/channel"
PINNED_SPEC_PATH = SPEC_PATH + "/release/<release_id>"  # as a Flask route
VALIDATE_PATH = "/api/v1/licenses/validate"
LICENSES_PATH = "/api/v1/licenses"
CHANNELS_PATH = "/api/v1/channels"
CUSTOMERS_PATH = "/api/v1/customers"
JWKS_PATH = "/.well-known/jwks.json"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
CONTRACT_PATH = "/openapi.yaml"
# Prometheus metrics (deployd.metrics), unless they are served on a port of their own.
METRICS_PATH = "/metrics"
EVENTS_PATH = "/api/v1/events"
FLEET_PATH = "/api/v1/fleet"
ADOPTION_PATH = CHANNELS_PATH + "/<name>/adoption"  # as a Flask route
# The release console's pages (deployd.console), for people in a browser.
CONSOLE_PATH = "/console"
# What an instance reports after each reconcile (deployd.rollouts).
REPORT_PATH = "/api/v1/operator/report"
# Offline bundles for air-gapped sites (deployd.offline), made by publishers.
BUNDLES_PATH = "/api/v1/bundles"

# Headers. The operator sends the release it runs; every spec carries its detached signature.
CURRENT_VERSION_HEADER = "Deployd-Current-Version"
SIGNATURE_HEADER = "Deployd-Signature"
# A webhook POST names its event (receivers drop a repeated id: delivery is at least once).
EVENT_ID_HEADER = "Deployd-Event-Id"
EVENT_TYPE_HEADER = "Deployd-Event-Type"
# Who is polling (deployd.fleet): a stable id of the cluster the agent runs in, the agent's own
# version and the cluster's Kubernetes version. All optional; the W&B operator sends none.
INSTANCE_ID_HEADER = "Deployd-Instance-Id"
AGENT_VERSION_HEADER = "Deployd-Agent-Version"
KUBERNETES_VERSION_HEADER = "Deployd-Kubernetes-Version"
# What their values may be (a server answers 400 `bad_instance_header` to anything else).
INSTANCE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}"
VERSION_PATTERN = r"[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}"

# Timestamps: RFC 3339 in UTC to the second, the one format deployd writes.
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def rfc3339(timestamp: float) -> str:
    """`timestamp` (seconds since the epoch) as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.fromtimestamp(timestamp, UTC).strftime(_TIMESTAMP_FORMAT)


def utc_now() -> str:
    """Now as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.now(UTC).strftime(_TIMESTAMP_FORMAT)


def rollout_path(channel: str) -> str:
    """The path of a channel's rollout health (publishers)."""
    return f"{CHANNELS_PATH}/{quote(channel, safe='')}/rollout"


def release_action_path(channel: str, release: str, action: str) -> str:
    """The path that halts or resumes (`action`) one release of a channel (publishers)."""
    return f"{rollout_path(channel)}/releases/{quote(release, safe='')}/{action}"


def pinned_spec_path(release: str) -> str:
    """The path that asks for one pinned release (the release id percent-encoded)."""
    return SPEC_PATH + "/release/" + quote(release, safe="")


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 timestamp that carries a UTC offset; raise ValueError otherwise."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return parsed.astimezone(UTC)
