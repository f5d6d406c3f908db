"""MkDocs hook: the HTTP API page is rendered from openapi.yaml at build time.

A page that holds the line `<!-- openapi -->` gets, in its place, every operation of the
contract grouped by tag: method and path, summary, who may call it, parameters, request body and
responses. The contract stays the one source; the page can never drift from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MARKER = "<!-- openapi -->"
CONTRACT = Path(__file__).resolve().parents[2] / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "patch")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER not in markdown:
        return markdown
    spec = yaml.safe_load(CONTRACT.read_text())
    return markdown.replace(MARKER, render(spec))


def render(spec: dict[str, Any]) -> str:
    """The operations of `spec` as Markdown, one section per tag in the contract's order."""
    by_tag: dict[str, list[str]] = {tag["name"]: [] for tag in spec.get("tags", [])}
    for path, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method in METHODS:
            if method in item:
                operation = item[method]
                tag = (operation.get("tags") or ["other"])[0]
                by_tag.setdefault(tag, []).append(_operation(spec, method, path, operation, shared))
    sections = []
    for tag, operations in by_tag.items():
        if operations:
            sections.append(f"## {tag.capitalize()}\n\n" + "\n".join(operations))
    return "\n".join(sections)


def _operation(
    spec: dict[str, Any], method: str, path: str, operation: dict[str, Any], shared: list[Any]
) -> str:
    lines = [f"### `{method.upper()} {path}`", "", operation.get("summary", "")]
    if operation.get("description"):
        lines += ["", operation["description"].strip()]
    lines += ["", f"**Auth:** {_security(spec, operation)}"]
    parameters = [_resolve(spec, p) for p in [*shared, *operation.get("parameters", [])]]
    if parameters:
        lines += ["", "| parameter | in | required | meaning |", "|---|---|---|---|"]
        for p in parameters:
            meaning = " ".join((p.get("description") or "").split())
            required = "yes" if p.get("required") else "no"
            lines.append(f"| `{p['name']}` | {p['in']} | {required} | {meaning} |")
    body = operation.get("requestBody")
    if body:
        kinds = ", ".join(f"`{kind}`" for kind in body.get("content", {}))
        lines += ["", f"**Body:** {kinds}{' (required)' if body.get('required') else ''}"]
    lines += ["", "| status | meaning |", "|---|---|"]
    for status, response in operation.get("responses", {}).items():
        described = " ".join((_resolve(spec, response).get("description") or "").split())
        lines.append(f"| {status} | {described} |")
    return "\n".join(lines) + "\n"


def _security(spec: dict[str, Any], operation: dict[str, Any]) -> str:
    requirements = operation.get("security", spec.get("security", []))
    names = [name for requirement in requirements for name in requirement]
    if not names:
        return "none"
    optional = any(not requirement for requirement in requirements)
    described = ", ".join(f"`{name}`" for name in names)
    return described + (" (optional)" if optional else "")


def _resolve(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """`node`, or what its `$ref` (`#/components/...`) points at."""
    ref = node.get("$ref")
    if not ref:
        return node
    target: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return target
