"""The user's side of the hierarchy, read from files: values mappings and custom resources.

Files are YAML (JSON is YAML too), parsed safely, capped in size and in the number of nodes (which
also bounds what YAML aliases can expand to).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deployd.client.errors import InputError

MAX_INPUT_BYTES = 1_048_576
MAX_INPUT_NODES = 100_000


class _Loader(yaml.SafeLoader):
    """Safe YAML that leaves timestamps as strings, as Helm does, so values stay JSON."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class CustomResource:
    """A custom resource like the W&B operator's `WeightsAndBiases`: its chart and values."""

    api_version: str
    kind: str
    name: str | None
    chart: Mapping[str, Any] | None = field(repr=False)
    values: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> CustomResource:
        """The custom-resource level given as a bare values mapping (no manifest, no chart)."""
        return cls(api_version="", kind="", name=None, chart=None, values=values)


def load_values_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A Helm values mapping from a YAML or JSON file (an empty file is ``{}``)."""
    document = _load_yaml(Path(path))
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise InputError(f"{path}: a values file must hold a mapping")
    return document


def load_custom_resource(path: str | os.PathLike[str]) -> CustomResource:
    """A whole custom resource manifest: `apiVersion`, `kind`, `spec.chart`, `spec.values`."""
    return parse_custom_resource(_load_yaml(Path(path)), source=str(path))


def parse_custom_resource(document: Any, *, source: str = "<custom resource>") -> CustomResource:
    """Check a parsed manifest; return its chart and values or raise InputError naming the field."""
    if not isinstance(document, dict):
        raise InputError(f"{source}: a custom resource must be a mapping")
    for key in ("apiVersion", "kind"):
        if not isinstance(document.get(key), str) or not document[key]:
            raise InputError(f"{source}: {key}: required string")
    metadata = document.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise InputError(f"{source}: metadata: must be a mapping")
    spec = document.get("spec") or {}
    if not isinstance(spec, dict):
        raise InputError(f"{source}: spec: must be a mapping")
    chart = spec.get("chart")
    if chart is not None and not isinstance(chart, dict):
        raise InputError(f"{source}: spec.chart: must be a mapping")
    values = spec.get("values") or {}
    if not isinstance(values, dict):
        raise InputError(f"{source}: spec.values: must be a mapping")
    name = metadata.get("name")
    return CustomResource(
        api_version=document["apiVersion"],
        kind=document["kind"],
        name=name if isinstance(name, str) else None,
        chart=chart or None,
        values=values,
    )


def parse_values_text(data: bytes, *, source: str) -> dict[str, Any]:
    """A Helm values mapping from YAML or JSON text, checked like a values file; `source`
    names it in the InputError raised for anything unusable."""
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(f"{source}: larger than {MAX_INPUT_BYTES} bytes")
    document = _parse_yaml(data, source)
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise InputError(f"{source}: a values file must hold a mapping")
    return document


def _load_yaml(path: Path) -> Any:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_INPUT_BYTES + 1)
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}") from e
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(f"{path}: larger than {MAX_INPUT_BYTES} bytes")
    return _parse_yaml(data, str(path))


def _parse_yaml(data: bytes, source: str) -> Any:
    try:
        documents = list(yaml.load_all(data, Loader=_Loader))
    except yaml.YAMLError as e:
        raise InputError(f"{source}: not valid YAML: {e}") from e
    if len(documents) > 1:
        raise InputError(f"{source}: holds {len(documents)} YAML documents; give exactly one")
    document = documents[0] if documents else None
    _check_size(document, source)
    return document


def _check_size(document: Any, path: str) -> None:
    budget = MAX_INPUT_NODES
    stack = [document]
    while stack:
        node = stack.pop()
        budget -= 1
        if budget < 0:
            raise InputError(f"{path}: more than {MAX_INPUT_NODES} nodes (aliases count each use)")
        if isinstance(node, dict):
            if any(not isinstance(key, str) for key in node):
                raise InputError(f"{path}: every mapping key must be a string")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, float) and not math.isfinite(node):
            raise InputError(f"{path}: {node!r} is not a number JSON can carry")
        elif node is not None and not isinstance(node, str | int | float | bool):
            raise InputError(f"{path}: {type(node).__name__} values are not allowed (JSON only)")
