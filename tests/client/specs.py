"""Signed spec bodies made in the tests, shaped like the server's (see the wire contract)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from deployd.client.cache import SpecBundle
from deployd.specs.signing import SpecSigner

DAY = 86_400.0
CHART = {"url": "https://charts.example.com", "name": "server", "version": "0.10.0"}


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def spec_document(
    *,
    channel: str = "stable",
    release: str = "1.0.0",
    sequence: int | str = 1,
    issued_at: float | None = None,
    expires: float | None = None,
    chart: Any = None,
    values: Any = None,
    **metadata: Any,
) -> dict[str, Any]:
    now = time.time()
    meta: dict[str, Any] = {
        "channel": channel,
        "release": release,
        "sequence": str(sequence),
        "issuedAt": rfc3339(now - DAY if issued_at is None else issued_at),
        "expires": rfc3339(now + 3 * DAY if expires is None else expires),
    }
    meta.update(metadata)
    return {
        "metadata": meta,
        "chart": dict(CHART) if chart is None else chart,
        "values": {"app": {"image": {"tag": release}}} if values is None else values,
    }


def encode(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


@dataclass
class SpecKey:
    """A spec-signing key made for one test, with its public half on disk when asked."""

    signer: SpecSigner

    @classmethod
    def generate(cls, kid: str = "test-spec") -> SpecKey:
        return cls(SpecSigner(kid, Ed25519PrivateKey.generate()))

    @property
    def kid(self) -> str:
        return self.signer.kid

    @property
    def trusted(self) -> dict[str, Any]:
        return {self.kid: self.signer.public_key}

    def sign(self, body: bytes) -> str:
        return self.signer.signature_header(body)

    def bundle(self, etag: str | None = None, **fields: Any) -> SpecBundle:
        body = encode(spec_document(**fields))
        return SpecBundle(body, self.sign(body), etag)

    def write_public(self, directory: Path) -> Path:
        path = directory / f"{self.kid}.pub"
        path.write_bytes(
            self.signer.public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return path
