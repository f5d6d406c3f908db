"""Where a published channel's source text comes from: its file, or YAML the server writes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from deployd.channels import (
    DOCUMENT_FIELD,
    Channel,
    load_channel_paths,
    parse_channel_text,
)
from deployd.errors import (
    ChannelValidationError,
    Problem,
)


def channel_sources(paths: Iterable[str | Path]) -> list[tuple[Channel, str]]:
    """Every channel under `paths` with the text it was parsed from (all-or-nothing).

    Raises ChannelValidationError listing the problems of every file.
    """
    paths = [Path(p) for p in paths]
    items = []
    for loaded in load_channel_paths(paths):
        file = _file_of(loaded.name, paths)
        # Parse again the very bytes kept as the source, so the two can never disagree even if
        # the file is being edited meanwhile.
        try:
            data = file.read_bytes()
        except OSError as e:
            problem = Problem(
                str(file), None, DOCUMENT_FIELD, f"cannot read the file: {e.strerror}"
            )
            raise ChannelValidationError([problem]) from e
        channel = parse_channel_text(data, filename=str(file), expected_name=loaded.name)
        items.append((channel, data.decode("utf-8")))
    return items


def _file_of(name: str, paths: list[Path]) -> Path:
    """The file `load_channel_paths` read channel `name` from (its stem is always the name)."""
    for path in paths:
        if path.is_dir():
            candidates = [path / f"{name}.yaml", path / f"{name}.yml"]
        else:
            candidates = [path] if path.stem == name else []
        for candidate in candidates:
            if candidate.is_file():
                return candidate
    raise ChannelValidationError(
        [Problem(name, None, DOCUMENT_FIELD, "the channel's file disappeared while being read")]
    )


def document_source(document: Mapping[str, Any]) -> str:
    """YAML text of a document the server wrote itself (a promotion), kept as its source."""
    return yaml.safe_dump(
        dict(document), sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )
