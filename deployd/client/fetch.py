"""Fetching over HTTP: the only client module that touches the network.

Limits are enforced while the body streams in (declared length, bytes read, total time), so an
oversized or endless answer costs at most `max_body_bytes` of memory and about `total_timeout`
seconds (the clock is checked between reads; one read waits at most `read_timeout`).
Redirects are not followed: the license must go only to the configured server.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import requests
import urllib3

from deployd.client.errors import FetchError
from deployd.client.trust import CATrust, trusting_session

CHUNK_BYTES = 65_536


@dataclass(frozen=True)
class HttpResponse:
    """A complete answer: status, headers (keys lower-cased) and the body bytes as received."""

    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)


class Fetcher(Protocol):
    """Something that can GET a URL within limits. Raises FetchError when no answer came back."""

    def get(self, url: str, *, headers: Mapping[str, str], license: str | None) -> HttpResponse: ...

    def close(self) -> None: ...


class HttpFetcher:
    """`Fetcher` on a `requests` session: keep-alive, timeouts, size cap, the site's CAs."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        total_timeout: float,
        max_body_bytes: int,
        ca_trust: CATrust | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeouts = (connect_timeout, read_timeout)
        self.total_timeout = total_timeout
        self.max_body_bytes = max_body_bytes
        self.clock = clock
        self.session = trusting_session(ca_trust)

    def get(self, url: str, *, headers: Mapping[str, str], license: str | None) -> HttpResponse:
        """GET `url`; HTTP Basic ``license:<license>`` when a license is given."""
        auth = requests.auth.HTTPBasicAuth("license", license) if license is not None else None
        deadline = self.clock() + self.total_timeout
        try:
            with self.session.get(
                url,
                headers=dict(headers),
                auth=auth,
                timeout=self.timeouts,
                stream=True,
                allow_redirects=False,
            ) as response:
                received = {k.lower(): v for k, v in response.headers.items()}
                declared = received.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_body_bytes:
                    raise _oversize(self.max_body_bytes, response.status_code)
                chunks: list[bytes] = []
                size = 0
                while chunk := self._read_some(response.raw, deadline):
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        raise _oversize(self.max_body_bytes, response.status_code)
                    chunks.append(chunk)
                return HttpResponse(response.status_code, received, b"".join(chunks))
        except requests.exceptions.SSLError as e:
            raise FetchError("tls", f"TLS to the server failed: {_reason(e)}") from e
        except requests.exceptions.Timeout as e:
            raise FetchError("timeout", f"the server did not answer in time: {_reason(e)}") from e
        except requests.exceptions.RequestException as e:
            raise FetchError("unreachable", f"cannot reach the server: {_reason(e)}") from e

    def _read_some(self, raw: urllib3.response.BaseHTTPResponse, deadline: float) -> bytes:
        # read1 returns as soon as any bytes arrive, so a server dripping one byte at a time
        # cannot hold the client past `total_timeout` (a full-size read would wait for all).
        if self.clock() > deadline:
            raise FetchError("timeout", f"the answer took longer than {self.total_timeout:g}s")
        try:
            return raw.read1(CHUNK_BYTES, decode_content=True)
        except urllib3.exceptions.ReadTimeoutError as e:
            raise FetchError("timeout", f"the server stopped sending: {_reason(e)}") from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise FetchError("unreachable", f"the answer was cut off: {_reason(e)}") from e

    def close(self) -> None:
        self.session.close()


def _oversize(limit: int, status: int) -> FetchError:
    return FetchError(
        "oversize", f"the answer is larger than the {limit}-byte limit", http_status=status
    )


def _reason(error: Exception) -> str:
    # urllib3's MaxRetryError wraps the root cause (refused, DNS, reset) in `reason`.
    inner = error.args[0] if error.args else None
    text = str(getattr(inner, "reason", None) or error) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."
