"""The README stays true: its commands are the ones CI runs, its config table is the real one."""

from __future__ import annotations

import re
from pathlib import Path

from deployd.config import ENVIRONMENT

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


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
    documented = set(re.findall(r"^\| `([A-Z_]+)`", README, flags=re.M))
    assert set(ENVIRONMENT) <= documented, set(ENVIRONMENT) - documented
