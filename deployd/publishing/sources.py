"""The source text kept with a channel the server wrote itself (files keep their own text:
`deployd.channels.load_channel_sources`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml


def document_source(document: Mapping[str, Any]) -> str:
    """YAML text of a document the server wrote itself (a promotion), kept as its source."""
    return yaml.safe_dump(
        dict(document), sort_keys=False, allow_unicode=True, default_flow_style=False, width=100
    )
