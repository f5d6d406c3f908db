"""Every error deployd raises on purpose, each with its HTTP status and machine-readable code.

The server turns any `DeploydError` into `{"error": {"code": ..., "message": ...}}` with `status`;
the CLI prints `message` and exits non-zero. Foreign errors are wrapped with ``raise ... from e``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The license validation codes (the `code` of 401/403 errors and of /api/v1/licenses/validate;
# README, *HTTP API*) and the status each code answers with.
LICENSE_CODES: dict[str, int] = {
    "missing": 401,
    "malformed": 401,
    "algorithm_not_allowed": 401,
    "unknown_key": 401,
    "key_retired": 401,
    "bad_signature": 401,
    "expired": 403,
    "not_yet_valid": 403,
    "wrong_issuer": 403,
    "wrong_audience": 403,
    "missing_claim": 403,
    "revoked": 403,
    "channel_not_allowed": 403,
}


class DeploydError(Exception):
    """Base class: carries an HTTP `status`, a stable `code` and a human `message`."""

    status: int = 500
    code: str = "internal"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}


class BadRequestError(DeploydError):
    status = 400
    code = "bad_request"


class LicenseError(DeploydError):
    """A license failed validation; `code` is one of `LICENSE_CODES`.

    `claims` are the license's claims when its signature verified and a later check failed
    (expired, revoked, ...): whose license it is can then be told; None otherwise.
    """

    def __init__(self, code: str, message: str, *, claims: dict[str, Any] | None = None) -> None:
        if code not in LICENSE_CODES:
            raise ValueError(f"unknown license code {code!r}")
        super().__init__(message, code=code, status=LICENSE_CODES[code])
        self.claims = claims


class PublisherAuthError(DeploydError):
    """A request that needs a publisher credential did not carry a valid one."""

    status = 401
    code = "publisher_unauthorized"


class MetricsAuthError(DeploydError):
    """A read of /metrics without the metrics bearer token (DEPLOYD_METRICS_TOKEN)."""

    status = 401
    code = "metrics_unauthorized"


class InstanceLimitError(DeploydError):
    """A new instance over its license's `maxInstances` (deployd.fleet)."""

    status = 403
    code = "instance_limit"


class NotFoundError(DeploydError):
    status = 404
    code = "not_found"


class ConflictError(DeploydError):
    status = 409
    code = "conflict"


class PreconditionFailedError(DeploydError):
    """An `If-Match` sequence no longer matches the channel (someone published in between)."""

    status = 412
    code = "sequence_conflict"


class PayloadTooLargeError(DeploydError):
    status = 413
    code = "payload_too_large"


class RateLimitedError(DeploydError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreUnavailableError(DeploydError):
    """The state store (Redis) cannot be reached; reads may still be served from cache."""

    status = 503
    code = "store_unavailable"


class StoreUninitializedError(StoreUnavailableError):
    """The store has no epoch: it is new or lost its data, and nobody ran `deployd store init` or
    restored a backup yet. Nothing is served from it and nothing written to it."""

    code = "store_uninitialized"


class ConfigError(DeploydError):
    """The server or a command was configured wrongly (missing key file, bad setting...)."""

    code = "config_error"


class KeyFileError(ConfigError):
    """A key file is missing, unreadable, of the wrong type or has unsafe permissions."""

    code = "key_file_error"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a channel document, pinned to its place."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        line = self.line if self.line is not None else "?"
        return f"{self.file}:{line}: {self.field}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "message": self.message}


class ChannelValidationError(DeploydError):
    """A channel document was refused whole; `problems` lists every reason with its line."""

    status = 422
    code = "invalid_channel"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        first = str(self.problems[0]) if self.problems else "invalid channel"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(first + more)

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["error"]["problems"] = [p.to_dict() for p in self.problems]
        return body
