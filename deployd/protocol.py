"""The wire protocol between deployd and its clients: paths, header names and the timestamp format.

The server's routes, its CLI's remote target and the docs use these names. (The operator-side
client, `deployd.client`, still keeps copies of a few of them.)
"""

from __future__ import annotations

from datetime import UTC, datetime

# Paths. A spec is polled at SPEC_PATH; a pinned release at SPEC_PATH + /release/<id>.
SPEC_PATH = "/api/v1/operator/channel"
PINNED_SPEC_PATH = SPEC_PATH + "/release/<release_id>"
VALIDATE_PATH = "/api/v1/licenses/validate"
LICENSES_PATH = "/api/v1/licenses"
CHANNELS_PATH = "/api/v1/channels"

# Headers. The operator sends the release it runs; every spec carries its detached signature.
CURRENT_VERSION_HEADER = "Deployd-Current-Version"
SIGNATURE_HEADER = "Deployd-Signature"

# Timestamps: RFC 3339 in UTC to the second, the one format deployd writes.
_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def rfc3339(timestamp: float) -> str:
    """`timestamp` (seconds since the epoch) as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.fromtimestamp(timestamp, UTC).strftime(_TIMESTAMP_FORMAT)


def utc_now() -> str:
    """Now as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.now(UTC).strftime(_TIMESTAMP_FORMAT)
