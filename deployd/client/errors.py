"""Errors the client raises on purpose; all are `DeploydError`s so the CLI prints them plainly."""

from __future__ import annotations

from deployd.errors import DeploydError


class ClientError(DeploydError):
    """Base class of the client's errors."""

    code = "client_error"


class SpecRefusedError(ClientError):
    """A spec failed verification and must not be used; `reason` names the failed check."""

    code = "spec_refused"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class FetchError(ClientError):
    """The server could not be asked, or did not answer with something the client can use.

    `reason` is a short machine word (``unreachable``, ``timeout``, ``oversize``, ``http_error``
    ...), `http_status` the status code when the server answered, `retry_after` the seconds the
    server asked the client to wait (from ``Retry-After``), if any.
    """

    code = "fetch_failed"

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        http_status: int | None = None,
        error_code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.http_status = http_status
        self.error_code = error_code
        self.retry_after = retry_after


class InputError(ClientError):
    """A values file, custom resource or offline bundle given by the user is unusable."""

    code = "bad_input"


class ReconcileError(ClientError):
    """A reconciler could not make the deployment match the desired state."""

    code = "reconcile_failed"
