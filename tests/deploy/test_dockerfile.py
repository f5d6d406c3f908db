"""The Dockerfile's shape: a wheel built in one stage and installed in a slim one, the Python
image as a build argument, a fixed non-root user, a urllib health check, gunicorn with the
checked-in settings, and nothing secret in the build context or the image."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")
# What the image is built from; anything else (keys, channels, local state) stays out.
ALLOWED_SOURCES = {"pyproject.toml", "README.md", "deployd", "gunicorn.conf.py"}


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of every instruction, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def stages() -> list[list[tuple[str, str]]]:
    """Instructions grouped by build stage (each starts at a FROM)."""
    grouped: list[list[tuple[str, str]]] = []
    for instruction in instructions():
        if instruction[0] == "FROM":
            grouped.append([])
        if grouped:
            grouped[-1].append(instruction)
    return grouped


def dockerignored(path: str) -> bool:
    """Whether the .dockerignore patterns keep `path` (or a folder above it) out of the context."""
    patterns = [
        p.strip()
        for p in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if p.strip() and not p.startswith("#")
    ]
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        variants = {pattern, pattern.removeprefix("**/")}
        if any(fnmatch.fnmatchcase(prefix, v) for prefix in prefixes for v in variants):
            return True
    return False


def test_the_python_image_is_a_build_argument_of_both_stages():
    first = instructions()[0]
    assert first[0] == "ARG" and re.fullmatch(r"PYTHON_IMAGE=python:3\.1\d-slim", first[1])
    froms = [args for name, args in instructions() if name == "FROM"]
    assert len(froms) == 2
    assert all(args.startswith("${PYTHON_IMAGE} AS ") for args in froms)


def test_the_builder_makes_a_wheel_that_the_runtime_stage_installs_offline():
    builder, runtime = stages()
    assert any(name == "RUN" and "pip wheel" in args for name, args in builder)
    install = [args for name, args in runtime if name == "RUN" and "pip install" in args]
    assert len(install) == 1
    assert "from=builder" in install[0] and "--no-index" in install[0]
    # No compiler, no source tree and no pip cache in the runtime stage.
    assert not [args for name, args in runtime if name == "COPY" and "deployd" in args.split()]


def test_only_the_package_and_the_gunicorn_settings_are_copied_in():
    for name, args in instructions():
        if name in ("COPY", "ADD"):
            assert name == "COPY", "ADD can fetch URLs and unpack archives: use COPY"
            *sources, _ = [a for a in args.split() if not a.startswith("--")]
            assert set(sources) <= ALLOWED_SOURCES, sources


def test_it_runs_as_a_fixed_non_root_user():
    _, runtime = stages()
    uid = re.search(r"^ARG DEPLOYD_UID=(\d+)$", DOCKERFILE, re.M)
    assert uid and int(uid.group(1)) >= 10000
    users = [args for name, args in runtime if name == "USER"]
    assert users == ["${DEPLOYD_UID}:${DEPLOYD_UID}"]
    # USER comes after every RUN, so nothing the image runs at start runs as root.
    names = [name for name, _ in runtime]
    assert names.index("USER") > max(i for i, name in enumerate(names) if name == "RUN")


def test_writable_state_goes_under_tmp():
    env = " ".join(args for name, args in instructions() if name == "ENV")
    assert "DEPLOYD_STATE_DIR=/tmp/" in env
    assert "HOME=/tmp" in env  # gunicorn's control socket and any cache
    assert "PYTHONDONTWRITEBYTECODE=1" in env


def test_the_health_check_uses_urllib_on_healthz():
    (check,) = [args for name, args in instructions() if name == "HEALTHCHECK"]
    command = json.loads(check.split("CMD", 1)[1])
    assert command[:2] == ["python3", "-c"]
    assert "urllib.request" in command[2] and "/healthz" in command[2]
    assert "curl" not in check and "wget" not in check


def test_the_entry_point_is_gunicorn_with_the_checked_in_settings():
    (entrypoint,) = [json.loads(args) for name, args in instructions() if name == "ENTRYPOINT"]
    (command,) = [json.loads(args) for name, args in instructions() if name == "CMD"]
    assert entrypoint[0] == "gunicorn" and entrypoint[1] == "-c"
    assert Path(entrypoint[2]).name == "gunicorn.conf.py"
    assert f"COPY gunicorn.conf.py {entrypoint[2]}" in DOCKERFILE
    assert command == ["deployd.wsgi:app"]


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".venv/bin/python",
        "keys/dev.key",
        "keys/dev.pub",
        "secrets/spec-2026.key",
        "deployd/somewhere/leaked.key",
        ".deployd/dev-signing.key",
        ".deployd/dev-publisher.token",
        "license.jwt",
        "deploy/kubernetes/overlays/production/redis.env",
    ],
)
def test_the_build_context_leaves_out_secrets_and_local_state(path):
    assert dockerignored(path)


@pytest.mark.parametrize(
    "path", ["pyproject.toml", "README.md", "deployd/server/app.py", "gunicorn.conf.py"]
)
def test_the_build_context_keeps_what_the_image_needs(path):
    assert not dockerignored(path)
