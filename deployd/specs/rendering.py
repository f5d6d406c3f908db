"""Spec rendering: (channel, sequence, release, time window) -> exact body, ETag, signature.

A rendered spec is byte-identical for every request inside its time window, so ETags and caches
hold; `issuedAt` and `expires` move only when the window does (`DEPLOYD_SPEC_WINDOW_SECONDS`;
README, *Configuration*; docs/security.md, *Freeze*).

Both caches here are keyed by the channel's sequence and the window, so a publish (a new
sequence) or a new window is a new key: nothing is ever invalidated in place, and stale entries
age out of the bounded maps.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from deployd.channels import Channel, Release
from deployd.channels.selection import select_release
from deployd.protocol import rfc3339
from deployd.specs.signing import SpecSigner


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
    # The ETag covers the signing key too: after a key switch, a client's If-None-Match no longer
    # matches, so it gets the same bytes with the new signature instead of a 304.
    etag = '"' + hashlib.sha256(body + b"\0" + signer.kid.encode()).hexdigest()[:32] + '"'
    return RenderedSpec(body, etag, signer.signature_header(body), release.version, sequence)


# Longer Deployd-Current-Version values are answered without remembering the choice, so a client
# sending junk cannot fill the memory with it.
MAX_REMEMBERED_VERSION_CHARS = 128


# What one kept spec costs besides its body, signature and ETag: the object, its key and the
# dict slots of both maps (measured with tracemalloc, rounded up).
SPEC_OVERHEAD_BYTES = 600
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

# (channel, sequence, release version, window start): what a rendered spec is kept by
SpecKey = tuple[str, int, str, float]
# (channel, sequence, customer, current version, window start, halted releases)
ChoiceKey = tuple[str, int, str | None, str | None, float, frozenset[str]]


def spec_bytes(spec: RenderedSpec) -> int:
    """An estimate of the memory one kept spec takes."""
    return len(spec.body) + len(spec.signature) + len(spec.etag) + SPEC_OVERHEAD_BYTES


class SpecCache:
    """Rendered specs kept per worker, by (channel, sequence, release, window), the least
    recently used dropped first once they take more than `max_bytes` (an estimate, `spec_bytes`):
    the specs of every channel of a large store fit, since each is a few KB.

    Also remembers which spec each caller was given, by (channel, sequence, customer, reported
    current version, window): the customer is what rollout cohorts are keyed on, so a repeated
    poll costs one lookup instead of a release selection (a hash per release on a staged rollout),
    and `remembered` answers it without the compiled channel. A choice is the spec's key, not the
    spec (a few hundred bytes): when the spec was dropped meanwhile, `select` renders it again.
    At most `max_choices` are kept, oldest dropped first.
    """

    def __init__(
        self,
        signer: SpecSigner,
        *,
        window_seconds: int,
        expiry_windows: int,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_choices: int = 20_000,
    ) -> None:
        self.signer = signer
        self.window_seconds = window_seconds
        self.expiry_windows = expiry_windows
        self.max_bytes = max_bytes
        self.max_choices = max_choices
        self._entries: OrderedDict[SpecKey, RenderedSpec] = OrderedDict()
        self.bytes = 0  # the estimated memory of the entries (`spec_bytes`)
        self._choices: OrderedDict[ChoiceKey, SpecKey] = OrderedDict()
        self._lock = threading.Lock()
        # Lookups answered from memory and renders (deployd.metrics adds them up in the
        # background): plain integers, so a poll takes no lock to count.
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every rendered spec and choice (the store they came from was replaced)."""
        with self._lock:
            self._entries.clear()
            self._choices.clear()
            self.bytes = 0

    def _window(self, now: float) -> float:
        return now - now % self.window_seconds

    def _kept(self, key: SpecKey) -> RenderedSpec | None:
        with self._lock:
            spec = self._entries.get(key)
            if spec is not None:
                self._entries.move_to_end(key)
        return spec

    def remembered(
        self,
        name: str,
        *,
        sequence: int,
        customer: str | None,
        current_version: str | None,
        now: float,
        halted: frozenset[str] = frozenset(),
    ) -> RenderedSpec | None:
        """The spec `select` would answer this caller from memory, without the channel; None
        when the choice or its spec is not kept (then ask `select`)."""
        chosen = self._choices.get(
            (name, sequence, customer, current_version, self._window(now), halted)
        )
        if chosen is None:
            return None
        spec = self._kept(chosen)
        if spec is not None:
            self.hits += 1
        return spec

    def select(
        self,
        channel: Channel,
        *,
        sequence: int,
        customer: str | None,
        current_version: str | None,
        now: float,
        halted: frozenset[str] = frozenset(),
    ) -> RenderedSpec:
        """The spec of the release `select_release` picks for this caller (same errors); the
        `halted` releases take part in the choice and so in the key it is remembered by."""
        window_start = self._window(now)
        key = (channel.name, sequence, customer, current_version, window_start, halted)
        chosen = self._choices.get(key)
        release = channel.release(chosen[2]) if chosen is not None else None
        if release is None:
            release = select_release(
                channel, customer=customer, current_version=current_version, halted=halted
            )
        spec = self.get(channel, release, sequence=sequence, now=now)
        if chosen is None and (
            current_version is None or len(current_version) <= MAX_REMEMBERED_VERSION_CHARS
        ):
            with self._lock:
                self._choices[key] = (channel.name, sequence, release.version, window_start)
                while len(self._choices) > self.max_choices:
                    self._choices.popitem(last=False)
        return spec

    def get(self, channel: Channel, release: Release, *, sequence: int, now: float) -> RenderedSpec:
        window_start = self._window(now)
        key = (channel.name, sequence, release.version, window_start)
        spec = self._kept(key)
        if spec is not None:
            self.hits += 1
            return spec
        self.misses += 1
        spec = render_spec(
            channel,
            release,
            sequence=sequence,
            signer=self.signer,
            window_start=window_start,
            expires=window_start + self.window_seconds * self.expiry_windows,
        )
        with self._lock:
            replaced = self._entries.pop(key, None)
            if replaced is not None:
                self.bytes -= spec_bytes(replaced)
            self._entries[key] = spec
            self.bytes += spec_bytes(spec)
            while len(self._entries) > 1 and self.bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self.bytes -= spec_bytes(dropped)
        return spec
