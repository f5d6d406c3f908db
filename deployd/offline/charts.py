"""Chart archives of local-path charts (`chart.path`), for `deployd bundle export --include-charts`.

A local path names a chart on the operator's side, so the exporter reads it from a directory of
its own (`--chart-root`, the checkout of the charts): a packaged chart (a file, taken as it is)
or a chart directory (packed into a gzipped tar, deterministically: sorted names, no owner or
time, so the digest in the manifest names the contents). A path must stay inside the root.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

from deployd.channels import Release
from deployd.errors import ConfigError
from deployd.offline.export import ChartArchives

MAX_CHART_ARCHIVE_BYTES = 64 * 1024 * 1024


def chart_archives_under(root: Path) -> ChartArchives:
    """The archive of each release's local-path chart, read under `root`."""
    base = root.resolve()

    def archive(release: Release) -> bytes | None:
        relative = release.chart.get("path")
        if not isinstance(relative, str):
            return None
        path = (base / relative).resolve()
        if not path.is_relative_to(base):
            raise ConfigError(
                f"release {release.version}: chart path {relative!r} leaves the chart root {root}"
            )
        if path.is_file():
            return _read_bounded(path)
        if path.is_dir():
            return _pack(path)
        raise ConfigError(
            f"release {release.version}: chart path {relative!r} is not under the chart root"
            f" {root} (give --chart-root)"
        )

    return archive


def _read_bounded(path: Path) -> bytes:
    with path.open("rb") as f:
        data = f.read(MAX_CHART_ARCHIVE_BYTES + 1)
    if len(data) > MAX_CHART_ARCHIVE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CHART_ARCHIVE_BYTES} bytes")
    return data


def _pack(directory: Path) -> bytes:
    """`directory` as a gzipped tar under its own name, the way `helm package` lays it out."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in sorted(p for p in directory.rglob("*") if p.is_file() and not p.is_symlink()):
            name = f"{directory.name}/{path.relative_to(directory).as_posix()}"
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    data = buffer.getvalue()
    if len(data) > MAX_CHART_ARCHIVE_BYTES:
        raise ConfigError(f"{directory}: packed, larger than {MAX_CHART_ARCHIVE_BYTES} bytes")
    return data
