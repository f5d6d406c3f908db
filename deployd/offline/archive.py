"""The offline bundle's container: a plain (uncompressed) tar of a few named files.

Written deterministically (sorted names, fixed owner, mode and time), so the same contents make
the same bytes. Read as hostile input: the whole file is read up to `MAX_BUNDLE_BYTES` into
memory, nothing is ever extracted to disk by tarfile, and the reader refuses, before it returns
anything, more than `MAX_MEMBERS` members, a member name that is not a plain relative name
(`MEMBER_NAME`: no `..`, no absolute path, no backslash), anything but regular files (links,
devices, directories, FIFOs), a name given twice and a member over its size limit.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Mapping
from pathlib import Path

from deployd.offline.errors import (
    NOT_A_BUNDLE,
    TOO_LARGE,
    UNREADABLE,
    UNSAFE_MEMBER,
    BundleRefusedError,
)

MAX_BUNDLE_BYTES = 256 * 1024 * 1024
MAX_MEMBERS = 512
# One or two path segments of letters, digits, '.', '_', '-', '+', none starting with a dot.
MEMBER_NAME = re.compile(
    r"[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,127}(/[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,127})?"
)
_FIXED_MTIME = 0


def write_archive(members: Mapping[str, bytes]) -> bytes:
    """A tar holding `members` (name -> bytes), in name order, with no owner or time in it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(members):
            if not MEMBER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is no member name an offline bundle may hold")
            data = members[name]
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, _FIXED_MTIME
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def read_file(path: Path, *, limit: int = MAX_BUNDLE_BYTES) -> bytes:
    """The bytes of the bundle at `path`, refused past `limit` without reading further."""
    try:
        with path.open("rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise BundleRefusedError(UNREADABLE, f"cannot read {path}: {e.strerror}") from e
    if len(data) > limit:
        raise BundleRefusedError(TOO_LARGE, f"{path} is larger than {limit} bytes")
    return data


def read_archive(
    data: bytes, *, member_limits: Mapping[str, int], default_limit: int
) -> dict[str, bytes]:
    """The members of the tar in `data` (name -> bytes); BundleRefusedError for anything unsafe.

    A member is refused when it is larger than `member_limits[name]`, else `default_limit`.
    """
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleRefusedError(TOO_LARGE, f"the bundle is larger than {MAX_BUNDLE_BYTES} bytes")
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            # Iterating reads one header at a time (getmembers() would read them all first).
            for count, info in enumerate(tar, start=1):
                if count > MAX_MEMBERS:
                    raise BundleRefusedError(
                        UNSAFE_MEMBER, f"the bundle has more than {MAX_MEMBERS} members"
                    )
                _check_member(info, members, member_limits.get(info.name, default_limit))
                members[info.name] = _read_member(tar, info)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise BundleRefusedError(
            NOT_A_BUNDLE, f"not an offline bundle (a damaged or truncated tar): {e}"
        ) from e
    if not members:
        raise BundleRefusedError(NOT_A_BUNDLE, "not an offline bundle: the archive is empty")
    return members


def _check_member(info: tarfile.TarInfo, seen: Mapping[str, bytes], limit: int) -> None:
    shown = info.name[:80].encode("unicode_escape").decode("ascii")
    if not MEMBER_NAME.fullmatch(info.name):
        raise BundleRefusedError(
            UNSAFE_MEMBER, f"member {shown!r} is no plain relative name (path traversal?)"
        )
    if not info.isreg():
        raise BundleRefusedError(
            UNSAFE_MEMBER, f"member {shown!r} is not a regular file (link, device or directory)"
        )
    if info.name in seen:
        raise BundleRefusedError(UNSAFE_MEMBER, f"member {shown!r} appears twice")
    if info.size > limit:
        raise BundleRefusedError(TOO_LARGE, f"member {shown!r} is larger than {limit} bytes")


def _read_member(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    reader = tar.extractfile(info)
    if reader is None:
        raise BundleRefusedError(UNSAFE_MEMBER, f"member {info.name!r} has no content")
    with reader:
        data = reader.read(info.size + 1)
    if len(data) != info.size:
        raise BundleRefusedError(NOT_A_BUNDLE, f"member {info.name!r} is truncated")
    return data
