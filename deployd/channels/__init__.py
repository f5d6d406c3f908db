"""Channel documents: read a channel's YAML (or JSON) safely, check all of it, compile its releases.

A channel is refused whole or accepted whole. Every problem found is reported at once, each with
its file, 1-based line and field path (``releases[2].chart.version``), so a release engineer can
fix a file in one pass. YAML is read with PyYAML's safe composer and turned into Python values
node by node (`reading`), which gives every field its line; the text size, the nesting depth and the
number of nodes (counting every alias expansion, so YAML bombs stop early) are capped.
"""

from deployd.channels.checks import channel_from_document, parse_channel_text
from deployd.channels.files import load_channel_file, load_channel_paths, load_channel_sources
from deployd.channels.model import (
    DOCUMENT_FIELD,
    NAME_PATTERN,
    Channel,
    Release,
    channel_digest,
    field_path,
)
from deployd.channels.reading import (
    MAX_DEPTH,
    MAX_INTEGER_DIGITS,
    MAX_NODES,
    MAX_TEXT_BYTES,
    integer_too_long,
)

__all__ = [
    "DOCUMENT_FIELD",
    "MAX_DEPTH",
    "MAX_INTEGER_DIGITS",
    "MAX_NODES",
    "MAX_TEXT_BYTES",
    "NAME_PATTERN",
    "Channel",
    "Release",
    "channel_digest",
    "channel_from_document",
    "field_path",
    "integer_too_long",
    "load_channel_file",
    "load_channel_paths",
    "load_channel_sources",
    "parse_channel_text",
]
