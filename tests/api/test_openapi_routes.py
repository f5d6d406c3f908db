"""openapi.yaml and the app's routes name the same operations."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

OPENAPI = yaml.safe_load((Path(__file__).resolve().parents[2] / "openapi.yaml").read_text())


def _app_operations(app) -> set[tuple[str, str]]:
    operations = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operations.add((method.lower(), path))
    return operations


def _documented_operations() -> set[tuple[str, str]]:
    operations = set()
    for path, item in OPENAPI["paths"].items():
        for method in item:
            if method in {"get", "post", "put", "delete", "patch"}:
                operations.add((method, path))
    return operations


def _normalized(operations):
    # Parameter names may differ between Flask and the document; their positions may not.
    return {(m, re.sub(r"\{[^}]+\}", "{}", p)) for m, p in operations}


def test_every_route_is_documented_and_every_documented_route_exists(app):
    assert _normalized(_app_operations(app)) == _normalized(_documented_operations())
