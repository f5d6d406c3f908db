"""The client's settings and limits in one dataclass, and loading of the trusted signing keys."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import SplitResult, urlsplit, urlunsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from deployd.client.licensing import license_channel
from deployd.client.trust import CATrust
from deployd.errors import ConfigError, KeyFileError
from deployd.keyfiles import KEY_ID, key_id_for, load_public_key_file
from deployd.protocol import INSTANCE_ID_PATTERN, VERSION_PATTERN
from deployd.specs.signing import b64url_decode

logger = logging.getLogger(__name__)

SPEC_KEY_ROLE = "spec"
# Where the API starts in a URL: `server` is the base URL in front of it.
_API_PATH = re.compile(r"/api/v1(?:/|$)")
_LICENSE_CHARS = re.compile(r"^[\x21-\x7e]{1,16384}$")
MAX_KEY_FILE_BYTES = 1_048_576


@dataclass(frozen=True)
class ClientConfig:
    """What the client needs to know and the limits it keeps.

    `server` (a base URL such as ``https://deployd.example.com``), `offline_spec` (a spec
    file) or `offline_bundle` (an offline bundle, deployd.offline, bound to `license`) must be
    set; air-gapped sites use the last two, which are read instead of the server. `license`
    never appears in `repr`. `release` pins one release
    (``GET /api/v1/operator/channel/release/<id>``). Times are seconds. `ca_trust` holds CA
    certificates trusted for TLS besides the public ones (`load_ca_trust`). The client accepts
    specs of one channel only, `expected_channel`: `channel`, else the license's `channel`
    claim; without either (no license, or one that names no channel) `channel` is required.
    """

    trusted_keys: Mapping[str, Ed25519PublicKey] = field(repr=False)
    cache_dir: Path
    server: str | None = None
    license: str | None = field(default=None, repr=False)
    channel: str | None = None
    release: str | None = None
    offline_spec: Path | None = None
    offline_bundle: Path | None = None
    ca_trust: CATrust | None = field(default=None, repr=False)
    poll_interval: float = 300.0
    interval_jitter: float = 0.1
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    total_timeout: float = 60.0
    max_body_bytes: int = 4 * 1024 * 1024
    backoff_base: float = 2.0
    backoff_ceiling: float = 300.0
    max_retry_after: float = 3600.0
    reconcile_on_start: bool = True
    # Sent as Deployd-Instance-Id (default: a random id kept in cache_dir) and
    # Deployd-Kubernetes-Version (when known).
    instance_id: str | None = None
    kubernetes_version: str | None = None

    def __post_init__(self) -> None:
        if self.instance_id is not None and not re.fullmatch(INSTANCE_ID_PATTERN, self.instance_id):
            raise ConfigError(
                "the instance id must be 1 to 64 letters, digits and . _ - :, starting with a"
                " letter or digit"
            )
        if self.kubernetes_version is not None and not re.fullmatch(
            VERSION_PATTERN, self.kubernetes_version
        ):
            raise ConfigError(
                f"the Kubernetes version {self.kubernetes_version!r} must be like v1.29.4"
            )
        if not self.trusted_keys:
            raise ConfigError("no trusted spec-signing keys: give at least one (--trust-key)")
        if self.license is not None and not _LICENSE_CHARS.match(self.license):
            # Never echo it: the message may end up in logs.
            raise ConfigError("the license must be one line of printable ASCII (a JWT)")
        expected_channel(self.channel, self.license)
        sources = [self.server, self.offline_spec, self.offline_bundle]
        if all(source is None for source in sources):
            raise ConfigError(
                "set one of a server URL (--server), an offline spec (--offline-spec) or an"
                " offline bundle (--bundle)"
            )
        if self.offline_bundle is not None and self.license is None:
            raise ConfigError(
                "an offline bundle is bound to one license: give the agent its license"
                " (--license-file), so a bundle for another one is refused"
            )
        if self.server is not None:
            check_server_url(self.server)
        positive = {
            "poll_interval": self.poll_interval,
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "total_timeout": self.total_timeout,
            "max_body_bytes": self.max_body_bytes,
            "backoff_base": self.backoff_base,
            "backoff_ceiling": self.backoff_ceiling,
            "max_retry_after": self.max_retry_after,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"{name} must be positive, not {value!r}")
        if self.backoff_ceiling < self.backoff_base:
            raise ConfigError("backoff_ceiling must be at least backoff_base")
        if not 0 <= self.interval_jitter < 1:
            raise ConfigError("interval_jitter must be in [0, 1)")

    @property
    def expected_channel(self) -> str:
        """The one channel whose specs the client accepts."""
        return expected_channel(self.channel, self.license)

    @property
    def sends_license_in_clear(self) -> bool:
        """True when a license would travel over plain HTTP to a host other than loopback."""
        if self.server is None or self.license is None:
            return False
        parts = urlsplit(self.server)
        return parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "::1", "localhost")


def check_server_url(server: str) -> None:
    """Raise ConfigError unless `server` is the base URL of a deployd server."""
    parts = urlsplit(server)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"server URL {server!r} must be http(s)://host[:port]")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError("server URL must not carry a query, fragment or credentials")
    base = _base_of_api_url(parts)
    if base is not None:
        raise ConfigError(
            f"server URL {server!r} is an API URL, but --server takes the base URL"
            f" of the deployd server: use {base!r} (the client appends"
            " /api/v1/operator/channel itself, as the W&B operator does since v1.13.0)"
        )


def _base_of_api_url(parts: SplitResult) -> str | None:
    """The base URL in front of ``/api/v1/...`` in `parts`, or None when there is no API path."""
    match = _API_PATH.search(parts.path)
    if match is None:
        return None
    return urlunsplit((parts.scheme, parts.netloc, parts.path[: match.start()], "", ""))


def expected_channel(channel: str | None, license: str | None) -> str:
    """The channel whose specs a client accepts: `channel`, else the license's; ConfigError
    when neither names one."""
    found = channel or (license_channel(license) if license is not None else None)
    if found is None:
        raise ConfigError(
            "say which channel to follow (--channel NAME): without a license that names its"
            " channel, the client would not know which channel's specs to accept"
        )
    return found


def load_trusted_keys(paths: Iterable[str | os.PathLike[str]]) -> dict[str, Ed25519PublicKey]:
    """Load spec-signing public keys: PEM files (key id = file stem) or JWKS JSON files.

    From a JWKS only Ed25519 keys tagged ``"deployd_role": "spec"`` are taken. Several files make a
    key set, so a new key can be trusted before the server starts signing with it. Raises
    KeyFileError on any unreadable or unsuitable file, and when no key was found at all.
    """
    keys: dict[str, Ed25519PublicKey] = {}
    for raw_path in paths:
        path = Path(raw_path)
        try:
            with path.open("rb") as f:
                data = f.read(MAX_KEY_FILE_BYTES + 1)
        except OSError as e:
            raise KeyFileError(f"{path}: cannot read trusted key: {e.strerror}") from e
        if len(data) > MAX_KEY_FILE_BYTES:
            raise KeyFileError(f"{path}: larger than {MAX_KEY_FILE_BYTES} bytes")
        found = _jwks_keys(path, data) if data.lstrip()[:1] == b"{" else _pem_key(path)
        for kid, key in found.items():
            if kid in keys and _raw(keys[kid]) != _raw(key):
                raise KeyFileError(f"{path}: key id {kid!r} is already trusted with another key")
            keys[kid] = key
    if not keys:
        raise KeyFileError("no trusted spec-signing keys were found")
    return keys


def _pem_key(path: Path) -> dict[str, Ed25519PublicKey]:
    key = load_public_key_file(path)
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: a spec-signing key must be an Ed25519 public key")
    return {key_id_for(path): key}


def _jwks_keys(path: Path, data: bytes) -> dict[str, Ed25519PublicKey]:
    try:
        document = json.loads(data)
    except ValueError as e:
        raise KeyFileError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise KeyFileError(f"{path}: a JWKS file must hold an object with a 'keys' list")
    keys: dict[str, Ed25519PublicKey] = {}
    for index, jwk in enumerate(document["keys"]):
        if not isinstance(jwk, dict) or jwk.get("deployd_role") != SPEC_KEY_ROLE:
            continue
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not KEY_ID.match(kid):
            raise KeyFileError(f"{path}: keys[{index}] has no usable 'kid'")
        if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
            raise KeyFileError(f"{path}: spec key {kid!r} is not an Ed25519 (OKP) key")
        try:
            keys[kid] = Ed25519PublicKey.from_public_bytes(b64url_decode(str(jwk.get("x", ""))))
        except ValueError as e:
            raise KeyFileError(f"{path}: spec key {kid!r} has an invalid 'x'") from e
    if not keys:
        raise KeyFileError(f'{path}: the JWKS holds no key with "deployd_role": "spec"')
    return keys


def _raw(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
