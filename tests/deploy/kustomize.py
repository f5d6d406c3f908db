"""Render a kustomization the way `kustomize build` does, for the features deploy/ uses.

kustomize itself is not a Python package, so the tests apply its rules here: `resources` (files
and kustomization directories, in order), `secretGenerator` from env files (without the name
hash), strategic-merge `patches` found by the patch's kind and name, `images` and `namespace`.
A kustomization using anything else is refused, so these tests can never pass on a rendering that
silently left a feature out.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

Object = dict[str, Any]

SUPPORTED_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "images",
    "patches",
    "secretGenerator",
    "generatorOptions",
}
# Lists that a strategic merge patch merges item by item (by this key); other lists are replaced.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
}
CLUSTER_SCOPED_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass"}


class KustomizeError(Exception):
    """The kustomization cannot be built (kustomize would fail too, or uses an unknown field)."""


def render(directory: Path) -> list[Object]:
    """Every object `kustomize build directory` would print, in resource order."""
    kustomization = _load_kustomization(directory)
    objects: list[Object] = []
    for entry in kustomization.get("resources", []):
        objects.extend(_resource(directory / entry))
    objects.extend(_generated_secrets(directory, kustomization))
    for patch in kustomization.get("patches", []):
        _apply_patch(objects, directory, patch)
    for image in kustomization.get("images", []):
        _set_image(objects, image)
    if "namespace" in kustomization:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED_KINDS:
                obj["metadata"]["namespace"] = kustomization["namespace"]
    return objects


def load_documents(path: Path) -> list[Object]:
    """The YAML documents of one manifest file (empty documents dropped)."""
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def strategic_merge(base: Any, patch: Any, field: str | None = None) -> Any:
    """`patch` merged over `base`: mappings key by key (null deletes), keyed lists item by item."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value, key)
            else:
                merged[key] = value
        return merged
    key = MERGE_KEYS.get(field or "")
    if key and isinstance(base, list) and isinstance(patch, list):
        merged_items = list(base)
        for item in patch:
            index = next((i for i, old in enumerate(merged_items) if old[key] == item[key]), None)
            if index is None:
                merged_items.append(item)
            else:
                merged_items[index] = strategic_merge(merged_items[index], item)
        return merged_items
    return patch


def _load_kustomization(directory: Path) -> Object:
    path = directory / "kustomization.yaml"
    if not path.is_file():
        raise KustomizeError(f"{directory}: no kustomization.yaml")
    kustomization = yaml.safe_load(path.read_text(encoding="utf-8"))
    unknown = set(kustomization) - SUPPORTED_FIELDS
    if unknown:
        raise KustomizeError(f"{path}: fields this renderer does not apply: {sorted(unknown)}")
    return kustomization


def _resource(path: Path) -> list[Object]:
    if path.is_dir():
        return render(path)
    if not path.is_file():
        raise KustomizeError(f"{path}: no such resource")
    return load_documents(path)


def _generated_secrets(directory: Path, kustomization: Object) -> list[Object]:
    generators = kustomization.get("secretGenerator", [])
    if generators and not kustomization.get("generatorOptions", {}).get("disableNameSuffixHash"):
        raise KustomizeError("secretGenerator with a name hash: references would need rewriting")
    return [_secret_from_envs(directory, generator) for generator in generators]


def _secret_from_envs(directory: Path, generator: Object) -> Object:
    if set(generator) - {"name", "envs"}:
        raise KustomizeError(f"secretGenerator {generator['name']}: only envs files are applied")
    data: dict[str, str] = {}
    for env_file in generator["envs"]:
        path = directory / env_file
        if not path.is_file():
            raise KustomizeError(f"secretGenerator {generator['name']}: {path} does not exist")
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, value = line.partition("=")
                data[name] = base64.b64encode(value.encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": generator["name"]},
        "type": "Opaque",
        "data": data,
    }


def _apply_patch(objects: list[Object], directory: Path, patch: Object) -> None:
    if set(patch) != {"path"}:
        raise KustomizeError(f"patch {patch}: only strategic-merge patch files are applied")
    for document in load_documents(directory / patch["path"]):
        kind, name = document["kind"], document["metadata"]["name"]
        matches = [
            i
            for i, obj in enumerate(objects)
            if obj["kind"] == kind and obj["metadata"]["name"] == name
        ]
        if len(matches) != 1:
            raise KustomizeError(f"patch {patch['path']}: {len(matches)} objects are {kind} {name}")
        objects[matches[0]] = strategic_merge(objects[matches[0]], document)


def _set_image(objects: list[Object], image: Object) -> None:
    for container in containers(objects):
        name = container["image"].split("@")[0]
        if ":" in name.rsplit("/", 1)[-1]:
            name = name.rsplit(":", 1)[0]
        if name == image["name"]:
            container["image"] = f"{image.get('newName', name)}:{image['newTag']}"


def containers(value: Any) -> list[Object]:
    """Every container (and init container) of every pod template anywhere in `value`."""
    found: list[Object] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("containers", "initContainers"):
                found.extend(item)
            else:
                found.extend(containers(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(containers(item))
    return found
