"""docs/security.md stays true: every test it cites exists, and it covers the threats it must."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = (REPO / "docs" / "security.md").read_text(encoding="utf-8")
CITATION = re.compile(r"(tests/[\w/]+\.py)::(test_\w+)")
CITED = sorted(set(CITATION.findall(DOC)))


def test_the_document_cites_tests():
    assert len(CITED) >= 40


@pytest.mark.parametrize(("path", "name"), CITED, ids=[f"{p}::{n}" for p, n in CITED])
def test_every_cited_test_exists(path, name):
    source = REPO / path
    assert source.is_file(), f"{path} does not exist"
    # A module-level test function (parametrized or not) is what pytest collects.
    definition = re.compile(rf"^(?:async )?def {name}\(", re.M)
    assert definition.search(source.read_text(encoding="utf-8")), f"{path} has no {name}"


@pytest.mark.parametrize(
    "topic",
    [
        # The attackers.
        "Network attacker",
        "Stolen or forged license",
        "Leaked publisher token",
        "Compromised signing key",
        "Malicious or broken channel file",
        "Noisy or hostile client",
        # TUF's attack list.
        "Arbitrary software",
        "Rollback",
        "Freeze",
        "Mix-and-match",
        "Endless data",
        "Slow retrieval",
        # RFC 8725's JWT pitfalls.
        "Algorithm confusion",
        "`none`",
        "Key id injection",
        "Missing expiry",
        "Cross-JWT confusion",
    ],
)
def test_every_required_threat_has_a_heading_or_row(topic):
    lines = [line for line in DOC.splitlines() if line.startswith(("#", "|"))]
    assert any(topic in line for line in lines), f"docs/security.md does not cover {topic!r}"
