"""The README and the docs site stay true: the README's commands are the ones CI runs, the
configuration table is the real one, and the site builds with no warning and links every page."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from deployd.server.settings import ENVIRONMENT

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
DOCS = REPO / "docs"


def _shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, flags=re.S)


def test_ci_runs_the_readme_test_command():
    test_command = next(b.strip() for b in _shell_blocks() if "pytest" in b)
    ci = (REPO / ".ci" / "run").read_text()
    # .ci/run splits the one-liner into its steps; each step must be there, in order.
    steps = [s.strip() for s in test_command.split("&&")]
    positions = [ci.find(step) for step in steps]
    assert all(p >= 0 for p in positions), (steps, positions)
    assert positions == sorted(positions)


def test_quick_start_serves_the_embedded_default():
    serve = next(b.strip() for b in _shell_blocks() if "deployd serve" in b)
    assert "REDIS_URL" not in serve
    assert serve.endswith("deployd serve")


def test_every_environment_variable_is_documented():
    table = (DOCS / "operating.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z_]+)`", table, flags=re.M))
    assert set(ENVIRONMENT) <= documented, set(ENVIRONMENT) - documented


def test_every_page_is_in_the_site_and_linked_from_the_readme():
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    in_nav = {page for entry in config["nav"] for page in entry.values()}
    pages = {path.name for path in DOCS.glob("*.md")}
    assert pages == in_nav
    assert {f"docs/{page}" for page in pages - {"index.md"}} <= set(
        re.findall(r"\]\((docs/[^)]+)\)", README)
    )


def test_the_docs_site_builds_without_a_warning(tmp_path):
    # mkdocs.yml sets strict: a broken link or a page left out of the nav fails the build.
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "/api/v1/operator/channel/release/{release}" in api, "the reference was not rendered"
