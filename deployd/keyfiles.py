"""Key files: PEM public and private keys named by their key id, written and read safely.

The key id of a PEM file is its stem (`keys/prod-2026.pub` has key id ``prod-2026``). Private key
files are written 0600; one others can write is refused, one others can read is a warning.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from deployd.errors import KeyFileError
from deployd.files import create_exclusive

KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def key_id_for(path: str | os.PathLike[str]) -> str:
    """The key id a key file stands for: its file name without the extension."""
    kid = Path(path).stem
    if not KEY_ID.fullmatch(kid):
        raise KeyFileError(f"{Path(path).name}: key id {kid!r} must match {KEY_ID.pattern}")
    return kid


def check_private_key_permissions(path: Path, *, warn: list[str] | None = None) -> None:
    """Refuse a private key file that others can write; note (in `warn`) one others can read."""
    mode = path.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise KeyFileError(
            f"{path.name}: private key is writable by group or others (mode {oct(mode & 0o777)});"
            " run chmod 600 on it"
        )
    if mode & (stat.S_IRGRP | stat.S_IROTH) and warn is not None:
        warn.append(
            f"{path.name}: private key is readable by group or others (mode {oct(mode & 0o777)})"
        )


def load_private_key_file(
    path: str | os.PathLike[str], *, warn: list[str] | None = None
) -> PrivateKeyTypes:
    """Load a PEM private key after checking its permissions; raise KeyFileError on any problem."""
    path = Path(path)
    try:
        check_private_key_permissions(path, warn=warn)
        data = path.read_bytes()
    except OSError as e:
        raise KeyFileError(f"{path.name}: cannot read private key: {e.strerror}") from e
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise KeyFileError(f"{path.name}: not an unencrypted PEM private key") from e


def load_public_key_file(path: str | os.PathLike[str]) -> PublicKeyTypes:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise KeyFileError(f"{path.name}: cannot read public key: {e.strerror}") from e
    try:
        return serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as e:
        raise KeyFileError(f"{path.name}: not a PEM public key") from e


def write_key_pair(
    private_key: PrivateKeyTypes, directory: str | os.PathLike[str], kid: str
) -> tuple[Path, Path]:
    """Write `kid.key` (PKCS#8 PEM, mode 0600) and `kid.pub` into `directory`; overwrite neither."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = directory / f"{kid}.key", directory / f"{kid}.pub"
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    create_exclusive(key_path, pem, mode=0o600)
    create_exclusive(pub_path, public_pem, mode=0o644)
    return key_path, pub_path
