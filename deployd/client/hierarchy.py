"""The spec hierarchy: `channel < user input < custom resource`, merged into one desired state.

Values merge with `deployd.values.deep_merge`: mappings key by key, a list or scalar at a higher
level replaces the lower one whole, an explicit null at a higher level removes the key. The chart
is not merged: it comes whole from the highest level that sets one (a chart given by ``path`` and
one given by ``url`` + ``name`` must never be blended).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deployd.client.inputs import CustomResource
from deployd.client.verify import VerifiedSpec
from deployd.values import deep_merge

# A deployd control key in the values (the W&B operator's pin); it is not a Helm value.
RELEASE_PIN_KEY = "_releaseId"


def merge_specs(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Merge spec layers given lowest precedence first; each may hold `chart` and `values`.

    Returns ``{"chart": ..., "values": ...}`` with no nulls left in `values`; `chart` is a copy
    of the highest layer's non-empty chart (``{}`` when no layer sets one: an empty or null chart
    sets nothing). Inputs are not modified.
    """
    chart: Mapping[str, Any] | None = None
    values: dict[str, Any] = {}
    for layer in layers:
        if layer.get("chart"):
            chart = layer["chart"]
        if layer.get("values") is not None:
            values = deep_merge(values, layer["values"])
    return {"chart": deep_merge({}, chart or {}), "values": values}


@dataclass(frozen=True)
class DesiredState:
    """What the deployment should look like: the channel's metadata, a chart and merged values."""

    metadata: Mapping[str, str]
    chart: Mapping[str, Any] = field(repr=False)
    values: Mapping[str, Any] = field(repr=False)

    @property
    def release(self) -> str:
        return self.metadata.get("release", "")

    @property
    def channel(self) -> str:
        return self.metadata.get("channel", "")

    def document(self) -> dict[str, Any]:
        """The merged spec as handed to reconcilers: ``{"metadata", "chart", "values"}``."""
        return {
            "metadata": dict(self.metadata),
            "chart": deep_merge({}, self.chart),
            "values": deep_merge({}, self.values),
        }

    def to_json(self) -> bytes:
        """`document()` as UTF-8 JSON with sorted keys (stable bytes for the same state)."""
        return json.dumps(self.document(), sort_keys=True, indent=2, ensure_ascii=False).encode()

    @property
    def digest(self) -> str:
        """sha256 over release, chart and values: what decides whether anything changed.

        `issuedAt`, `expires` and `sequence` are left out: the server re-signs on a schedule and
        a publish of some other release must not make every client redeploy.
        """
        identity = {"release": self.release, "chart": self.chart, "values": self.values}
        canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


def desired_state(
    spec: VerifiedSpec,
    *,
    user_values: Mapping[str, Any] | None = None,
    custom_resource: CustomResource | None = None,
) -> DesiredState:
    """Merge a verified channel spec with the user's input values and custom resource.

    The top-level `_releaseId` control key is dropped from the merged values.
    """
    layers: list[Mapping[str, Any]] = [{"chart": spec.chart, "values": spec.values}]
    if user_values is not None:
        layers.append({"values": user_values})
    if custom_resource is not None:
        layers.append({"chart": custom_resource.chart, "values": custom_resource.values})
    merged = merge_specs(*layers)
    merged["values"].pop(RELEASE_PIN_KEY, None)
    return DesiredState(dict(spec.metadata), merged["chart"], merged["values"])
