"""The client's memory on disk: the last accepted spec, sequence floors and the applied state.

Files in the cache directory (mode 0600: applied values may hold the license):

- ``spec.json``: the last accepted spec as a bundle ``{"body", "signature", "etag"}``; `body` is
  the exact response body as a string. It is re-verified whenever it is loaded. The same format
  (``etag`` optional) is the offline bundle an air-gapped site feeds to ``--offline-spec``.
- ``sequences.json``: ``{channel: {"sequence": highest accepted, "release": accepted at it}}``,
  the rollback floors (a bare sequence number, as older clients wrote, is read as a floor
  without a release).
- ``applied.json``: the merged desired state the reconciler last applied successfully, with its
  release (reported to the server as ``Deployd-Current-Version``).
- ``offline-bundle.tar`` and ``charts/<release>.tgz``: the last offline bundle imported with
  ``deployd bundle import`` (deployd.offline; written only once it verified) and the chart
  archives it carried.

Every write goes to a temporary file in the same directory, is flushed to disk, then renamed over
the old file with `os.replace`, so a crash leaves either the old or the new file, never half of one.
One agent per cache directory.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployd.client.errors import InputError
from deployd.client.hierarchy import DesiredState
from deployd.client.verify import Floor
from deployd.protocol import INSTANCE_ID_PATTERN

logger = logging.getLogger(__name__)

SPEC_FILE = "spec.json"
SEQUENCES_FILE = "sequences.json"
APPLIED_FILE = "applied.json"
INSTANCE_ID_FILE = "instance-id"
OFFLINE_BUNDLE_FILE = "offline-bundle.tar"
CHARTS_DIR = "charts"
# A bundle is JSON around the body: escaping can at most double it, plus a signature and an ETag.
BUNDLE_OVERHEAD_BYTES = 65_536
_HEADER_SAFE = re.compile(r"^[\x21-\x7e]{1,256}$")


@dataclass(frozen=True)
class SpecBundle:
    """An unverified spec as stored: exact body bytes, the signature header value, its ETag."""

    body: bytes = field(repr=False)
    signature: str = field(repr=False)
    etag: str | None = None

    def to_bytes(self) -> bytes:
        document: dict[str, Any] = {"body": self.body.decode("utf-8"), "signature": self.signature}
        if self.etag is not None:
            document["etag"] = self.etag
        return json.dumps(document, ensure_ascii=False, indent=1).encode()


def parse_bundle(data: bytes, *, max_body_bytes: int, source: str = "bundle") -> SpecBundle:
    """Parse ``{"body": "<exact body>", "signature": "<Deployd-Signature value>"[, "etag"]}``.

    Raises InputError when the bundle is not of that shape or its body is over `max_body_bytes`.
    The body is not verified here.
    """
    if len(data) > 2 * max_body_bytes + BUNDLE_OVERHEAD_BYTES:
        raise InputError(f"{source}: larger than a spec bundle may be")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise InputError(f"{source}: not a JSON spec bundle: {e}") from e
    if not isinstance(document, dict):
        raise InputError(f"{source}: a spec bundle is a JSON object")
    body, signature, etag = document.get("body"), document.get("signature"), document.get("etag")
    if not isinstance(body, str) or not isinstance(signature, str):
        raise InputError(f"{source}: a spec bundle needs string 'body' and 'signature'")
    if etag is not None and (not isinstance(etag, str) or not _HEADER_SAFE.match(etag)):
        raise InputError(f"{source}: 'etag' must be a header-safe string")
    try:
        raw = body.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InputError(f"{source}: 'body' is not valid UTF-8 text") from e
    if len(raw) > max_body_bytes:
        raise InputError(f"{source}: body is larger than {max_body_bytes} bytes")
    return SpecBundle(raw, signature, etag)


@dataclass(frozen=True)
class AppliedState:
    """The desired state a reconciler last made true, and when."""

    desired: DesiredState
    applied_at: str

    @property
    def release(self) -> str:
        return self.desired.release

    def to_bytes(self) -> bytes:
        document = {
            "release": self.release,
            "appliedAt": self.applied_at,
            "desired": self.desired.document(),
        }
        return json.dumps(document, sort_keys=True, indent=1, ensure_ascii=False).encode()


def _floor(value: object) -> Floor | None:
    """A floor as stored: ``{"sequence": n, "release": "x" | null}``, or a bare sequence."""
    if type(value) is int and value >= 0:
        return Floor(value)
    if not isinstance(value, dict):
        return None
    sequence, release = value.get("sequence"), value.get("release")
    if type(sequence) is not int or sequence < 0:
        return None
    if release is not None and (not isinstance(release, str) or not _HEADER_SAFE.match(release)):
        return None
    return Floor(sequence, release)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace `path` with `data` so that readers see the old or the new content, never a mix."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    # Make the rename itself durable; not every platform lets a directory be opened for this.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class CacheDir:
    """Reads and atomically writes the client's files in one directory (created mode 0700)."""

    def __init__(self, path: str | os.PathLike[str], *, max_body_bytes: int) -> None:
        self.path = Path(path)
        self.max_body_bytes = max_body_bytes

    def _ensure(self) -> None:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _read(self, name: str, limit: int) -> bytes | None:
        try:
            with (self.path / name).open("rb") as f:
                data = f.read(limit + 1)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise InputError(f"{self.path / name}: cannot read: {e.strerror}") from e
        if len(data) > limit:
            raise InputError(f"{self.path / name}: larger than {limit} bytes")
        return data

    def load_spec(self) -> SpecBundle | None:
        """The last accepted spec (still to be re-verified), or None; InputError if unreadable."""
        limit = 2 * self.max_body_bytes + BUNDLE_OVERHEAD_BYTES
        data = self._read(SPEC_FILE, limit)
        if data is None:
            return None
        source = str(self.path / SPEC_FILE)
        return parse_bundle(data, max_body_bytes=self.max_body_bytes, source=source)

    def save_spec(self, bundle: SpecBundle) -> None:
        self._ensure()
        atomic_write(self.path / SPEC_FILE, bundle.to_bytes())

    def load_sequences(self) -> dict[str, Floor]:
        """The rollback floors; an unreadable file is an InputError (never silently forgotten)."""
        data = self._read(SEQUENCES_FILE, 1_048_576)
        if data is None:
            return {}
        try:
            document = json.loads(data)
        except ValueError as e:
            raise InputError(f"{self.path / SEQUENCES_FILE}: not JSON: {e}") from e
        problem = f"{self.path / SEQUENCES_FILE}: must map channel names to floors"
        if not isinstance(document, dict):
            raise InputError(problem)
        floors: dict[str, Floor] = {}
        for channel, value in document.items():
            floor = _floor(value)
            if floor is None:
                raise InputError(problem)
            floors[channel] = floor
        return floors

    def save_sequences(self, floors: Mapping[str, Floor]) -> None:
        self._ensure()
        document = {
            channel: {"sequence": floor.sequence, "release": floor.release}
            for channel, floor in floors.items()
        }
        atomic_write(self.path / SEQUENCES_FILE, json.dumps(document, sort_keys=True).encode())

    def load_applied(self) -> AppliedState | None:
        """The last applied state, or None; InputError if the file is damaged."""
        data = self._read(APPLIED_FILE, 4 * self.max_body_bytes + BUNDLE_OVERHEAD_BYTES)
        if data is None:
            return None
        source = self.path / APPLIED_FILE
        try:
            document = json.loads(data)
            desired = document["desired"]
            state = DesiredState(
                metadata=dict(desired["metadata"]), chart=desired["chart"], values=desired["values"]
            )
            applied = AppliedState(state, str(document["appliedAt"]))
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"{source}: damaged: {e}") from e
        if not all(isinstance(v, str) for v in state.metadata.values()) or not (
            isinstance(state.chart, dict) and isinstance(state.values, dict)
        ):
            raise InputError(f"{source}: damaged: not a desired state")
        if applied.release and not _HEADER_SAFE.match(applied.release):
            raise InputError(f"{source}: damaged: release is not a header-safe string")
        return applied

    def instance_id(self) -> str:
        """The id this client sends as Deployd-Instance-Id: made once (random) and kept in the
        cache directory, so the cluster stays one instance across restarts. InputError when
        the file is damaged; OSError when it cannot be written."""
        data = self._read(INSTANCE_ID_FILE, 256)
        if data is not None:
            text = data.decode("ascii", "replace").strip()
            if not re.fullmatch(INSTANCE_ID_PATTERN, text):
                raise InputError(f"{self.path / INSTANCE_ID_FILE}: damaged: not an instance id")
            return text
        made = secrets.token_hex(16)
        self._ensure()
        atomic_write(self.path / INSTANCE_ID_FILE, made.encode() + b"\n")
        return made

    @property
    def offline_bundle_path(self) -> Path:
        return self.path / OFFLINE_BUNDLE_FILE

    def save_offline_bundle(self, data: bytes, charts: Mapping[str, bytes]) -> list[Path]:
        """Keep an imported offline bundle (verified by the caller) and its chart archives
        (by release); the paths written, the bundle last."""
        self._ensure()
        written = []
        if charts:
            (self.path / CHARTS_DIR).mkdir(mode=0o700, exist_ok=True)
        for release, archive in sorted(charts.items()):
            path = self.path / CHARTS_DIR / f"{release}.tgz"
            atomic_write(path, archive, mode=0o644)
            written.append(path)
        atomic_write(self.offline_bundle_path, data)
        return [*written, self.offline_bundle_path]

    def save_applied(self, applied: AppliedState) -> None:
        self._ensure()
        atomic_write(self.path / APPLIED_FILE, applied.to_bytes())
