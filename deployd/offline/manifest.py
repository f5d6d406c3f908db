"""The signed manifest of an offline bundle, and the names of the files beside it.

A bundle is a tar (deployd.offline.archive) of:

- ``manifest.json``: who the bundle is for (license subject and id), the channel and its
  sequence, when it was made and when it expires, the specs it holds (release, required flag,
  member), the channel's release list with notes and required flags, the charts the specs name
  (with a digest where one is known) and the SHA-256 of every other member;
- ``manifest.sig``: a ``Deployd-Signature`` header value over the exact bytes of
  ``manifest.json``, made with the server's response-signing key;
- ``specs/<release>.json``: one signed spec each, in the ``--offline-spec`` format
  (``{"body": "<exact body>", "signature": "<Deployd-Signature>"}``, deployd.client.cache);
- ``jwks.json``: the public keys that verify the signatures (for the record: an agent trusts
  only the keys pinned in its own configuration);
- ``license.jwt``: the license the bundle was made for;
- ``charts/<release>.tgz``: with ``--include-charts``, the archives of local-path charts.

The manifest is no spec: it has a `kind` and no `chart`, so a manifest offered as a spec fails
verification, and a spec offered as a manifest has no `kind`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deployd.offline.errors import BAD_MANIFEST, BundleRefusedError
from deployd.protocol import parse_rfc3339
from deployd.semver import Version

KIND = "deployd-offline-bundle"
FORMAT = 1
MANIFEST_MEMBER = "manifest.json"
SIGNATURE_MEMBER = "manifest.sig"
JWKS_MEMBER = "jwks.json"
LICENSE_MEMBER = "license.jwt"
MAX_MANIFEST_BYTES = 1_048_576
MAX_SIGNATURE_BYTES = 1024
MAX_LICENSE_MEMBER_BYTES = 16_384
MAX_JWKS_BYTES = 1_048_576
_SHA256 = re.compile(r"[0-9a-f]{64}")


def spec_member(release: str) -> str:
    return f"specs/{release}.json"


def chart_member(release: str) -> str:
    return f"charts/{release}.tgz"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def spec_file(body: bytes, signature: str) -> bytes:
    """A spec as the ``--offline-spec`` format holds it (read by deployd.client.cache)."""
    document = {"body": body.decode("utf-8"), "signature": signature}
    return json.dumps(document, ensure_ascii=False, indent=1).encode()


@dataclass(frozen=True)
class BundledSpec:
    """One spec in the bundle: its release, whether the channel requires it, its member."""

    release: str
    required: bool
    member: str

    @property
    def semver(self) -> Version:
        return Version.parse(self.release)

    def to_dict(self) -> dict[str, Any]:
        return {"release": self.release, "required": self.required, "file": self.member}


@dataclass(frozen=True)
class Manifest:
    subject: str
    license_id: str
    channel: str
    sequence: int
    created_at: str
    expires: str
    specs: tuple[BundledSpec, ...]
    releases: tuple[dict[str, Any], ...] = field(repr=False)
    charts: tuple[dict[str, Any], ...] = field(repr=False)
    files: Mapping[str, str] = field(repr=False)  # member -> sha256 hex

    def to_bytes(self) -> bytes:
        document = {
            "kind": KIND,
            "format": FORMAT,
            "license": {"subject": self.subject, "id": self.license_id},
            "channel": self.channel,
            "sequence": self.sequence,
            "createdAt": self.created_at,
            "expires": self.expires,
            "specs": [spec.to_dict() for spec in self.specs],
            "releases": list(self.releases),
            "charts": list(self.charts),
            "files": dict(sorted(self.files.items())),
        }
        return json.dumps(document, ensure_ascii=False, indent=1, sort_keys=True).encode()

    def expires_at(self) -> float:
        return parse_rfc3339(self.expires).timestamp()

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        """The manifest in `data`; BundleRefusedError (``bad_manifest``) when it is not one."""
        try:
            document = json.loads(data.decode("utf-8"))
            if not isinstance(document, dict) or document.get("kind") != KIND:
                raise ValueError(f"its kind is not {KIND!r}")
            if document.get("format") != FORMAT:
                raise ValueError(f"format {document.get('format')!r} is not {FORMAT}")
            return _from_document(document)
        except (UnicodeDecodeError, ValueError, RecursionError, KeyError, TypeError) as e:
            raise BundleRefusedError(BAD_MANIFEST, f"the manifest is not usable: {e}") from e


def _from_document(document: dict[str, Any]) -> Manifest:
    license = _mapping(document["license"], "license")
    sequence = document["sequence"]
    if type(sequence) is not int or sequence < 0:
        raise ValueError("sequence must be a whole number")
    created_at, expires = _string(document["createdAt"]), _string(document["expires"])
    parse_rfc3339(created_at)
    parse_rfc3339(expires)
    files = _mapping(document["files"], "files")
    for member, digest in files.items():
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise ValueError(f"files[{member!r}] is no SHA-256 hex digest")
    specs = tuple(_bundled_spec(entry) for entry in _list(document["specs"], "specs"))
    if not specs:
        raise ValueError("it lists no spec")
    return Manifest(
        subject=_string(license["subject"]),
        license_id=_string(license["id"]),
        channel=_string(document["channel"]),
        sequence=sequence,
        created_at=created_at,
        expires=expires,
        specs=tuple(sorted(specs, key=lambda spec: spec.semver)),
        releases=tuple(_mapping(r, "releases[]") for r in _list(document["releases"], "releases")),
        charts=tuple(_mapping(c, "charts[]") for c in _list(document["charts"], "charts")),
        files=dict(files),
    )


def _bundled_spec(entry: Any) -> BundledSpec:
    entry = _mapping(entry, "specs[]")
    release, required, member = entry["release"], entry["required"], entry["file"]
    if not isinstance(release, str) or not isinstance(required, bool):
        raise ValueError("specs[] need a string release and a boolean required")
    Version.parse(release)
    if member != spec_member(release):
        raise ValueError(f"spec of release {release!r} is not in {spec_member(release)!r}")
    return BundledSpec(release, required, member)


def _mapping(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object")
    return value


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list")
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not a non-empty string")
    return value
