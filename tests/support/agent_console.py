"""A real `deployd agent --console` process (its own Python process, as an administrator runs it)
following a server, with its console on a free loopback port; for browser tests and screenshots."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 120.0  # however busy the machine
_PASSWORD_LINE = re.compile(r"system console password .*: (\S+)$", re.M)
_URL_LINE = re.compile(r"system console at (http\S+)")


@dataclass
class AgentConsole:
    url: str
    password: str
    cache_dir: Path
    out: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def user_values(self) -> Path:
        return self.cache_dir / "user-values.yaml"


def _wait_for_match(path: Path, pattern: re.Pattern[str], process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        found = pattern.search(path.read_text(errors="replace")) if path.exists() else None
        if found:
            return found.group(1)
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the agent did not start its console: {path.read_text()[-2000:]}")
        time.sleep(0.05)


@contextmanager
def agent_with_console(
    directory: Path, *, server: str, license: str, trust_key: Path, interval: float = 1.0
) -> Iterator[AgentConsole]:
    """Run `deployd agent --console 127.0.0.1:0 --write out/spec.yaml` in `directory` until the
    block ends (then SIGTERM, SIGKILL if it lingers)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "license.jwt").write_text(license)
    stdout, stderr = directory / "agent.out", directory / "agent.log"
    command = [
        sys.executable, "-m", "deployd", "agent", "--server", server,
        "--license-file", "license.jwt", "--trust-key", str(trust_key),
        "--cache-dir", "cache", "--write", "out/spec.yaml", "--interval", str(interval),
        "--console", "127.0.0.1:0", "--no-report",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DEPLOYD_LICENSE", None)
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            command, cwd=directory, env=env, stdout=out, stderr=err, start_new_session=True
        )
    try:
        password = _wait_for_match(stdout, _PASSWORD_LINE, process)
        url = _wait_for_match(stderr, _URL_LINE, process)
        yield AgentConsole(
            url.rstrip("/"), password, directory / "cache", directory / "out" / "spec.yaml",
            process, stderr,
        )  # fmt: skip
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
