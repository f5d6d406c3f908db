"""Spec rendering: (channel, sequence, release, time window) -> exact body, ETag, signature.

A rendered spec is byte-identical for every request inside its time window, so ETags and caches
hold; `issuedAt` and `expires` move only when the window does (DESIGN.md, contract).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from deployd.channels import Channel, Release
from deployd.signing import SpecSigner
from deployd.timestamps import rfc3339


@dataclass(frozen=True)
class RenderedSpec:
    body: bytes
    etag: str  # quoted, as sent in the ETag header
    signature: str  # Deployd-Signature header value
    release: str
    sequence: int


def spec_document(
    channel: Channel, release: Release, *, sequence: int, issued_at: float, expires: float
) -> dict[str, Any]:
    """The spec the W&B operator decodes: string-only metadata, the chart and the values."""
    metadata = {
        "channel": channel.name,
        "release": release.version,
        "sequence": str(sequence),
        "issuedAt": rfc3339(issued_at),
        "expires": rfc3339(expires),
    }
    if release.chart.get("version") is not None:
        metadata["chartVersion"] = str(release.chart["version"])
    if release.released_at:
        metadata["releasedAt"] = release.released_at
    return {"metadata": metadata, "chart": release.chart, "values": release.values}


def render_spec(
    channel: Channel,
    release: Release,
    *,
    sequence: int,
    signer: SpecSigner,
    window_start: float,
    expires: float,
) -> RenderedSpec:
    document = spec_document(
        channel, release, sequence=sequence, issued_at=window_start, expires=expires
    )
    body = json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return RenderedSpec(body, etag, signer.signature_header(body), release.version, sequence)


class SpecCache:
    """Rendered specs kept per worker, by (channel, sequence, release, window); bounded LRU."""

    def __init__(
        self, signer: SpecSigner, *, window_seconds: int, expiry_windows: int, maxsize: int = 4096
    ) -> None:
        self.signer = signer
        self.window_seconds = window_seconds
        self.expiry_windows = expiry_windows
        self.maxsize = maxsize
        self._entries: OrderedDict[tuple, RenderedSpec] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, channel: Channel, release: Release, *, sequence: int, now: float) -> RenderedSpec:
        window_start = now - now % self.window_seconds
        key = (channel.name, sequence, release.version, window_start)
        with self._lock:
            spec = self._entries.get(key)
            if spec is not None:
                self._entries.move_to_end(key)
                return spec
        spec = render_spec(
            channel,
            release,
            sequence=sequence,
            signer=self.signer,
            window_start=window_start,
            expires=window_start + self.window_seconds * self.expiry_windows,
        )
        with self._lock:
            self._entries[key] = spec
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
        return spec
