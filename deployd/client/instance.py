"""The agent's instance id: one stable id per cluster, kept in the cache directory.

Sent as `Deployd-Instance-Id` with reports (and, with the fleet part, polls), so the server counts
one instance per cluster. Generated once (128 random bits) and kept in ``instance-id``; a cache
directory that cannot be written still gets an id, for this process only.
"""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path

logger = logging.getLogger(__name__)

INSTANCE_ID_FILE = "instance-id"
_VALID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", re.ASCII)


def instance_id(cache_dir: Path) -> str:
    """The id kept in `cache_dir`, made and kept there on first use."""
    path = Path(cache_dir) / INSTANCE_ID_FILE
    try:
        kept = path.read_text(encoding="ascii").strip()
        if _VALID.fullmatch(kept):
            return kept
    except (OSError, UnicodeDecodeError):
        pass
    made = secrets.token_hex(16)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(made + "\n", encoding="ascii")
    except OSError as e:
        logger.warning(
            "cannot keep the instance id in %s (%s): it lasts this run", path, e.strerror
        )
    return made
