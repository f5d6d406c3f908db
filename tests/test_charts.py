"""Charts the W&B operator cannot install are refused, with their line and field.

The operator decodes a chart as the first of local path / OCI / Helm repository whose rules pass,
and silently gets no chart when none does. Each rule below has accepted and refused examples; the
same rules hold for `deployd channels check`, `deployd publish` and PUT /api/v1/channels/<name>
(all of them validate with deployd.channels).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from deployd.channels import channel_from_document, parse_channel_text
from deployd.errors import ChannelValidationError

SCHEMA = json.loads(
    (
        Path(__file__).resolve().parents[1] / "deployd/channels/schema/channel.schema.json"
    ).read_text()
)
DIGEST = "sha256:" + "c6841b3a895f1444a6738b5d04564a57e860ce42f8519c3be807fb6d9bee7888"
REPO = {"name": "server", "version": "1.0.0"}

# (chart of the release) -> accepted
ACCEPTED: dict[str, dict[str, Any]] = {
    "path": {"path": "./charts/server"},
    "repository": {"url": "https://charts.example.com", **REPO},
    "repository with port and path": {"url": "http://charts.example.com:8080/a/b", **REPO},
    "repository with an escape, query and fragment": {
        "url": "https://charts.example.com/a%20b/?x=1#top",
        **REPO,
    },
    "repository on an IPv6 literal": {"url": "https://[2001:db8::1]:8443/charts", **REPO},
    "repository with an empty port": {"url": "https://charts.example.com:/charts", **REPO},
    "helm version forms": {"url": "https://charts.example.com", "name": "s", "version": "v1.2"},
    "prerelease and build": {
        "url": "https://charts.example.com",
        "name": "s",
        "version": "1.2.3-rc.1+build.5",
    },
    "oci with a version": {"url": "oci://ghcr.io/wandb/charts/wandb", "version": "1.0.0"},
    "oci with a tag": {"url": "oci://ghcr.io/wandb/charts/wandb:1.0.0"},
    "oci with a digest": {"url": f"oci://ghcr.io/wandb/charts/wandb@{DIGEST}"},
    "oci with a tag and a digest": {"url": f"oci://ghcr.io/wandb/charts/wandb:1.0+x@{DIGEST}"},
    "oci with a registry port": {
        "url": "oci://registry.example.com:5000/charts/operator-wandb",
        "version": "0.20.0-beta.2",
    },
    "oci with the tag as version": {"url": "oci://ghcr.io/c/wandb:1.0.0", "version": "1.0.0"},
    "oci with a name (ignored by the operator)": {
        "url": "oci://ghcr.io/c/wandb",
        "name": "wandb",
        "version": "1.0.0",
    },
}

# (chart of the release) -> (field, words of the message); every one is on line 4.
REFUSED: dict[str, tuple[dict[str, Any], str, str]] = {
    "oci without version, tag or digest": (
        {"url": "oci://ghcr.io/wandb/charts/wandb"},
        "version",
        "needs a version, or a tag or digest",
    ),
    "oci tag and version disagree": (
        {"url": "oci://ghcr.io/wandb/charts/wandb:1.2.3", "version": "2.0.0"},
        "version",
        "disagrees with the tag '1.2.3'",
    ),
    "oci tag that is no version": (
        {"url": "oci://ghcr.io/wandb/charts/wandb:latest"},
        "url",
        "the tag in the url is the chart version",
    ),
    "oci tag with a plus": (
        {"url": "oci://ghcr.io/wandb/charts/wandb:1.0.0+b1", "version": "1.0.0+b1"},
        "url",
        "Helm reads as '_'",
    ),
    "oci without repository": ({"url": "oci://ghcr.io", "version": "1.0.0"}, "url", "repository"),
    "oci without registry": ({"url": "oci:///charts/x", "version": "1.0.0"}, "url", "registry"),
    "oci repository in capitals": (
        {"url": "oci://ghcr.io/Wandb/charts", "version": "1.0.0"},
        "url",
        "not an OCI repository name",
    ),
    "oci credentials": (
        {"url": "oci://user@ghcr.io/c", "version": "1.0.0"},
        "url",
        "not allowed in the registry",
    ),
    "oci port not a number": (
        {"url": "oci://ghcr.io:port/c", "version": "1.0.0"},
        "url",
        "port 'port'",
    ),
    "oci repository that fails late": (
        {"url": "oci://ghcr.io/" + "a" * 64 + "!", "version": "1.0.0"},
        "url",
        "not an OCI repository name",
    ),
    "oci bad digest": ({"url": "oci://ghcr.io/c@sha256:abc"}, "url", "64 lowercase hex digits"),
    "oci bad tag": ({"url": "oci://ghcr.io/c:-x", "version": "1.0.0"}, "url", "not an OCI tag"),
    "OCI in capitals is no oci": (
        {"url": "OCI://ghcr.io/c", "version": "1.0.0"},
        "url",
        "neither an http(s) Helm repository URL nor oci://",
    ),
    "bad percent-escape": (
        {"url": "https://charts.example.com/a%zz", **REPO},
        "url",
        "'%zz' in the path is not a percent-escape",
    ),
    "no host": ({"url": "https://user@/charts", **REPO}, "url", "no host name"),
    "port not a number": (
        {"url": "https://charts.example.com:port/charts", **REPO},
        "url",
        "the port 'port' after the host is not a number",
    ),
    "port too large": ({"url": "https://charts.example.com:99999/", **REPO}, "url", "65535"),
    "port of 5000 digits": ({"url": "https://c.example.com:" + "9" * 5000, **REPO}, "url", "65535"),
    "credentials": (
        {"url": "https://user:pw@charts.example.com/", **REPO},
        "url",
        "credentials",
    ),
    "bare IPv6": ({"url": "https://::1/charts", **REPO}, "url", "more than one ':'"),
    "two ports": ({"url": "https://charts.example.com:80:80/", **REPO}, "url", "one ':'"),
    "unclosed bracket": ({"url": "https://[::1/charts", **REPO}, "url", "without ']'"),
    "no IPv6 in brackets": ({"url": "https://[charts]/", **REPO}, "url", "not an IPv6 address"),
    "ASCII escaped in the host": (
        {"url": "https://%41.example.com/", **REPO},
        "url",
        "write ASCII characters as they are",
    ),
    "bad character in the host": (
        {"url": "https://charts{x}.example.com/", **REPO},
        "url",
        "'{' is not allowed in the host",
    ),
    "bad escape in the fragment": (
        {"url": "https://charts.example.com/#%g1", **REPO},
        "url",
        "in the fragment",
    ),
    "whitespace": ({"url": "https://charts.example.com/a b", **REPO}, "url", "whitespace"),
    "other scheme": (
        {"url": "ftp://charts.example.com", **REPO},
        "url",
        "neither an http(s) Helm repository URL nor oci://",
    ),
    "no slashes": ({"url": "https:charts.example.com", **REPO}, "url", "neither"),
    "repository without name": (
        {"url": "https://charts.example.com", "version": "1.0.0"},
        "name",
        "needs a name",
    ),
    "repository without version": (
        {"url": "https://charts.example.com", "name": "server"},
        "version",
        "needs a version",
    ),
    "version that is a word": (
        {"url": "https://charts.example.com", "name": "server", "version": "latest"},
        "version",
        "not a chart version",
    ),
    "version that is a range": (
        {"url": "oci://ghcr.io/c", "version": ">=1.0.0"},
        "version",
        "ranges",
    ),
    "version with 5000 digits": (
        {"url": "oci://ghcr.io/c", "version": "1." + "9" * 5000},
        "version",
        "too large",
    ),
    "prerelease with a leading zero": (
        {"url": "oci://ghcr.io/c", "version": "1.0.0-01"},
        "version",
        "leading zero",
    ),
}


def channel_text(chart: dict[str, Any]) -> str:
    return f"name: stable\nreleases:\n  - version: 1.0.0\n    chart: {json.dumps(chart)}\n"


@pytest.mark.parametrize("chart", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_charts_the_operator_installs_are_accepted(chart: dict[str, Any]) -> None:
    channel = parse_channel_text(channel_text(chart), filename="stable.yaml")
    assert channel.newest.chart == chart
    # The JSON Schema accepts whatever deployd accepts.
    jsonschema.validate(channel.document, SCHEMA, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize(("chart", "key", "words"), REFUSED.values(), ids=REFUSED.keys())
def test_charts_the_operator_would_drop_are_refused_with_line_and_field(
    chart: dict[str, Any], key: str, words: str
) -> None:
    with pytest.raises(ChannelValidationError) as caught:
        parse_channel_text(channel_text(chart), filename="stable.yaml")
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.field) == (
        "stable.yaml",
        4,
        f"releases[0].chart.{key}",
    )
    assert words in problem.message


def test_a_release_version_disagreeing_with_the_channels_tag_names_the_release_line() -> None:
    text = (
        "name: stable\n"
        "chart: {url: 'oci://ghcr.io/wandb/charts/wandb:1.0.0'}\n"
        "releases:\n"
        "  - version: 1.0.0\n"
        "  - version: 1.1.0\n"
        "    chart:\n"
        "      version: 1.1.0\n"
    )
    with pytest.raises(ChannelValidationError) as caught:
        parse_channel_text(text, filename="stable.yaml")
    assert [(p.line, p.field) for p in caught.value.problems] == [(7, "releases[1].chart.version")]


def test_a_json_document_is_held_to_the_same_rules() -> None:
    document = {
        "name": "stable",
        "chart": {"url": "oci://ghcr.io/wandb/charts/wandb"},
        "releases": [{"version": "1.0.0"}, {"version": "1.1.0", "chart": {"version": "0.2.0"}}],
    }
    with pytest.raises(ChannelValidationError) as caught:
        channel_from_document(document)
    assert [(p.line, p.field) for p in caught.value.problems] == [
        (None, "releases[0].chart.version")
    ]
