"""Files that appear whole or not at all."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def create_exclusive(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> None:
    """Create `path` holding `data` (with `mode`); raise FileExistsError if it already exists.

    The content is written to a temporary file first and then hard-linked into place, so a
    process that sees the file, even one racing to create it, always reads it complete.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    finally:
        os.unlink(tmp)
