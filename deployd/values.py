"""Deep merge of Helm-style values: the one rule the whole spec hierarchy follows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def deep_merge(lower: Mapping[str, Any], higher: Mapping[str, Any]) -> dict[str, Any]:
    """Return `lower` overridden by `higher`, key by key.

    Mappings merge recursively; a list or scalar in `higher` replaces the lower value whole;
    an explicit ``None`` in `higher` removes the key. Neither input is modified.
    """
    merged: dict[str, Any] = {key: _copy(value) for key, value in lower.items()}
    for key, value in higher.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = _strip_nulls(value)
    return merged


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _strip_nulls(value: Any) -> Any:
    # A null inside a newly introduced mapping has nothing below it to remove.
    if isinstance(value, Mapping):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
