"""What a publish changes, for people: the history summary line and the ``--dry-run`` listing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from deployd.channels import (
    field_path,
)
from deployd.semver import Version

# What a release is when its document leaves the key out (README, *Channel files*).
_RELEASE_DEFAULTS = {"rollout": 100, "required": False}


def summarize(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> str:
    """One line for people: releases added, removed and changed, and channel-wide changes.

    E.g. ``created with 4 releases`` or
    ``added 1.5.0; removed 1.2.0; changed 1.4.0 (rollout 25 -> 100); channel values changed``.
    """
    new_releases = _releases(new)
    if old is None:
        return f"created with {len(new_releases)} release{'' if len(new_releases) == 1 else 's'}"
    old_releases = _releases(old)
    parts = []
    added = [v for v in new_releases if v not in old_releases]
    removed = [v for v in old_releases if v not in new_releases]
    if added:
        parts.append("added " + ", ".join(added))
    if removed:
        parts.append("removed " + ", ".join(removed))
    for version, release in new_releases.items():
        before = old_releases.get(version)
        if before is not None and before != release:
            parts.append(f"changed {version} ({', '.join(_release_changes(before, release))})")
    for key in ("description", "chart", "values"):
        if old.get(key) != new.get(key):
            parts.append(f"channel {key} changed")
    if not parts and old.get("releases") != new.get("releases"):
        parts.append("releases reordered")
    return "; ".join(parts) or "no change"


def _releases(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """version -> release with its defaults filled in, in semver order."""
    releases = {r["version"]: {**_RELEASE_DEFAULTS, **r} for r in document.get("releases", ())}
    return dict(sorted(releases.items(), key=lambda item: Version.parse(item[0])))


def _release_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    changes = [
        f"{key} {_show(before[key])} -> {_show(after[key])}"
        for key in _RELEASE_DEFAULTS
        if before[key] != after[key]
    ]
    others = sorted((set(before) | set(after)) - set(_RELEASE_DEFAULTS))
    changes += [f"{key} changed" for key in others if before.get(key) != after.get(key)]
    return changes


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def describe_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """What publishing `new` over `old` changes, one line each, for people (``--dry-run``).

    Lines start with ``+`` (added), ``-`` (removed) or ``~`` (changed); the fields of a changed
    release follow it, indented. Release fields count with their defaults, so leaving out
    ``rollout: 100`` is no change.
    """
    new_releases = _releases(new)
    if old is None:
        return [f"+ new channel with releases {', '.join(new_releases)}"]
    old_releases = _releases(old)
    lines = _leaf_changes(old.get("description"), new.get("description"), ("description",))
    for key in ("chart", "values"):
        lines += _leaf_changes(old.get(key) or {}, new.get(key) or {}, (key,))
    for version, release in new_releases.items():
        before = old_releases.get(version)
        if before is None:
            lines.append(f"+ release {version}{_release_brief(release)}")
        elif before != release:
            lines.append(f"~ release {version}")
            lines += ["    " + change for change in _leaf_changes(before, release, ())]
    lines += [f"- release {version}" for version in old_releases if version not in new_releases]
    if not lines and old != new:
        lines.append("~ releases reordered")
    return lines


def _release_brief(release: Mapping[str, Any]) -> str:
    details = []
    chart_version = (release.get("chart") or {}).get("version")
    if chart_version is not None:
        details.append(f"chart {chart_version}")
    if release["rollout"] != 100:
        details.append(f"rollout {release['rollout']}")
    if release["required"]:
        details.append("required")
    return f" ({', '.join(details)})" if details else ""


def _leaf_changes(old: Any, new: Any, path: tuple[str | int, ...]) -> list[str]:
    if old == new:
        return []
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        lines: list[str] = []
        for key in [*old, *(k for k in new if k not in old)]:
            if key not in new:
                lines.append(f"- {field_path((*path, key))}: {_brief(old[key])}")
            elif key not in old:
                lines.append(f"+ {field_path((*path, key))}: {_brief(new[key])}")
            else:
                lines += _leaf_changes(old[key], new[key], (*path, key))
        return lines
    return [f"~ {field_path(path)}: {_brief(old)} -> {_brief(new)}"]


def _brief(value: Any, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= width else text[: width - 1] + "…"
