"""The channel model: a validated Channel, its Releases, field paths and the document digest."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from deployd.semver import Version

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
CHANNEL_KEYS = frozenset({"name", "description", "chart", "values", "releases", "halt"})
RELEASE_KEYS = frozenset(
    {"version", "chart", "values", "releasedAt", "notes", "required", "rollout", "halt"}
)
HALT_KEYS = frozenset({"failures", "failureRate", "minReports"})
CHART_KEYS = frozenset({"url", "name", "version", "path"})

# The field name used for problems that belong to the document as a whole (syntax, size, caps).
DOCUMENT_FIELD = "<document>"

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")

_Path = tuple[str | int, ...]


@dataclass(frozen=True)
class HaltPolicy:
    """When a release stops admitting new instances by itself (`halt:` in channel YAML).

    `failures`: halt once that many instances report the release failed or rolled back.
    `failure_rate` with `min_reports`: halt once at least `min_reports` instances reported on the
    release and the share of them that failed or rolled back is at least `failure_rate`.
    """

    failures: int | None = None
    failure_rate: float | None = None
    min_reports: int = 1

    def crossed(self, *, reports: int, failures: int) -> bool:
        """Whether `failures` out of `reports` (distinct instances) cross this policy."""
        if self.failures is not None and failures >= self.failures:
            return True
        if self.failure_rate is None or reports < max(self.min_reports, 1):
            return False
        return failures / reports >= self.failure_rate

    def describe(self) -> str:
        """Like ``halt: {failures: 3}``, as written in YAML."""
        inner = ", ".join(f"{k}: {v}" for k, v in self.to_dict().items())
        return f"halt: {{{inner}}}"

    def to_dict(self) -> dict[str, int | float]:
        """The policy as written in YAML."""
        if self.failures is not None:
            return {"failures": self.failures}
        assert self.failure_rate is not None
        return {"failureRate": self.failure_rate, "minReports": self.min_reports}


@dataclass(frozen=True)
class Release:
    """One release of a channel, with the channel's chart and values already merged in."""

    version: str
    semver: Version
    chart: dict[str, Any]
    values: dict[str, Any]
    released_at: str | None
    notes: str
    required: bool
    rollout: int
    document: dict[str, Any]
    halt: HaltPolicy | None = None  # the release's own policy, else the channel's


@dataclass(frozen=True)
class Channel:
    """A validated channel: its releases in ascending semver order and the document it came from."""

    name: str
    description: str
    chart: dict[str, Any]
    values: dict[str, Any]
    releases: tuple[Release, ...]
    document: dict[str, Any]

    def release(self, version: str) -> Release | None:
        """The release written as `version`, else the one of equal semver precedence, else None."""
        for release in self.releases:
            if release.version == version:
                return release
        try:
            wanted = Version.parse(version)
        except ValueError:
            return None
        return next((r for r in self.releases if r.semver == wanted), None)

    @property
    def newest(self) -> Release:
        """The release with the highest semver precedence (a channel always has one)."""
        return self.releases[-1]


def field_path(path: Iterable[str | int]) -> str:
    """Render a path of keys and indexes as ``releases[2].chart.version`` (odd keys quoted)."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += "[" + json.dumps(part, ensure_ascii=False) + "]"
    return text or DOCUMENT_FIELD


def channel_digest(document: Mapping[str, Any]) -> str:
    """sha256 hex of the document's canonical JSON (sorted keys, compact separators, UTF-8)."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
