"""The helm reconcile example and the environment it runs in."""

from __future__ import annotations

import os
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "helm-reconcile.sh"


def helm_env(bin_dir: Path | None, **extra: str) -> dict[str, str]:
    # python3 must stay reachable for the script; helm only when bin_dir provides it.
    python_dir = str(Path(sys.executable).parent)
    system = "/usr/bin:/bin"
    path = ":".join(p for p in (str(bin_dir) if bin_dir else "", python_dir, system) if p)
    return {"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), **extra}
