"""prometheus-client's multiprocess mode under gunicorn: the directory every worker writes its
values to, and reading them all back.

gunicorn.conf.py calls `prepare_directory` in the master before any worker starts (the workers
inherit PROMETHEUS_MULTIPROC_DIR and import prometheus-client after the fork, so they all write
there), `worker_exited` for each worker that ends (its live gauges stop counting), and
`remove_directory` when the master exits. Importing this module imports nothing of deployd's
server (no redis-py, no Flask): the master may. Nor does it import prometheus-client: that
chooses, once, on import, whether values go to files, and the master's choice is what every
worker it forks inherits; so prometheus-client is imported only once the directory is named.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from deployd.metrics.tally import flush

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def prepare_directory() -> tuple[Path, bool]:
    """A fresh directory for this server's workers, named in PROMETHEUS_MULTIPROC_DIR: the one
    already named there, emptied of an earlier run's files (they would be added to this run's), or
    a new temporary one. Returns it and whether it was created here (then `remove_directory`
    removes it whole)."""
    named = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if named:
        directory = Path(named)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        return directory, False
    directory = Path(tempfile.mkdtemp(prefix="deployd-metrics-"))
    os.environ[MULTIPROC_DIR_VARIABLE] = str(directory)
    return directory, True


def worker_exited(pid: int) -> None:
    """A worker ended: drop its live gauges (its counters keep counting in the totals)."""
    if os.environ.get(MULTIPROC_DIR_VARIABLE):
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(pid)  # type: ignore[no-untyped-call]


def remove_directory(directory: Path, created: bool) -> None:
    """At the master's exit: remove the directory made here, or empty the one named."""
    if created:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)


def exposition() -> bytes:
    """Every metric in the text format, over all processes when several write to the
    multiprocess directory, else this process's own; this process's pending counts first
    (deployd.metrics.tally: the other workers add theirs in their background rounds)."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    flush()

    directory = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if not directory:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
