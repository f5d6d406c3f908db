"""Where a published channel's source text comes from: its file, or YAML the server writes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from deployd.channels import Channel, load_channel_sources


def channel_sources(paths: Iterable[str | Path]) -> list[tuple[Channel, str]]:
    """Every channel under `paths` with the text it was parsed from (all-or-nothing); each file
    is read and parsed once, so the channel and the source kept with it cannot disagree.

    Raises ChannelValidationError listing the problems of every file.
    """
    return load_channel_sources(paths)


def document_source(document: Mapping[str, Any]) -> str:
    """YAML text of a document the server wrote itself (a promotion), kept as its source."""
    return yaml.safe_dump(
        dict(document), sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )
