"""A real server process serving deployd on a free loopback port, for end-to-end tests: gunicorn
with the checked-in gunicorn.conf.py, or granian through deployd's launcher
(deployd/server/granian.py), both configured by the same environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

from deployd.keyfiles import write_key_pair
from deployd.licensing.keyring import generate_private_key
from deployd.server.view import FIRST_VIEW_LOADED
from deployd.store.redis import RedisStore
from tests.support.factories import LicenseKit
from tests.support.redis_server import free_port
from tests.support.world import World

REPO = Path(__file__).resolve().parents[2]
# The servers deployd runs under in production, and how each is started (as the Procfile does).
SERVERS = ("gunicorn", "granian")
COMMANDS = {
    "gunicorn": ["-m", "gunicorn", "-c", str(REPO / "gunicorn.conf.py"), "deployd.wsgi:app"],
    "granian": ["-m", "deployd.server.granian"],
}


@dataclass
class RedisSetup:
    """What a deployd on Redis needs: a license key ring, a signing key, seeded channels."""

    kit: LicenseKit
    store: RedisStore
    env: dict[str, str]  # REDIS_URL, DEPLOYD_KEYS_DIR and DEPLOYD_SIGNING_KEY for the server


def redis_setup(tmp_path: Path, redis_url: str) -> RedisSetup:
    """Initialise the store in Redis (unless it is already), seed the test channels into it and
    make license keys (a World under `tmp_path/world`) and a signing key (`tmp_path/signing`)."""
    signing_key, _ = write_key_pair(generate_private_key("EdDSA"), tmp_path / "signing", "spec-1")
    store = RedisStore.from_url(redis_url)
    if store.marker().epoch is None:
        store.initialize()
    kit = World(tmp_path / "world", store=store, redis_url=redis_url).kit
    env = {
        "REDIS_URL": redis_url,
        "DEPLOYD_KEYS_DIR": str(kit.keys_dir),
        "DEPLOYD_SIGNING_KEY": str(signing_key),
    }
    return RedisSetup(kit, store, env)


@dataclass
class GunicornServer:
    env: Mapping[str, str]
    workers: int = 2
    server: str = "gunicorn"  # or "granian" (SERVERS)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_dir: Path) -> None:
        self.log_path = log_dir / f"{self.server}-{self.port}.log"
        # No drain on SIGTERM unless a test asks for one (tests/e2e/test_shutdown.py).
        env = {"DEPLOYD_DRAIN_SECONDS": "0", **os.environ, **self.env}
        env.update(PORT=str(self.port), HOST="127.0.0.1")
        env["WEB_CONCURRENCY"] = str(self.workers)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, *COMMANDS[self.server]],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120  # however busy the machine
        while True:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"{self.server} exited early:\n{self.log()}")
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.server} did not start:\n{self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def wait_for_every_view(self, timeout: float = 120.0) -> None:
        """Wait until every worker has read the store once. `start` returns when one worker
        answers; on a busy machine another can still be booting, and one that first reaches
        Redis while it is down has nothing to serve (it fails closed, rightly)."""
        deadline = time.monotonic() + timeout
        while len(self.workers_with_a_view()) < self.workers:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(self.workers_with_a_view())} of {self.workers} workers read the store"
                    f" within {timeout:g} s:\n{self.log()}"
                )
            time.sleep(0.1)

    def workers_with_a_view(self) -> set[int]:
        """The pids of the workers that have logged their first view of the store."""
        pids = set()
        for line in self.log().splitlines():
            if line.startswith("{") and FIRST_VIEW_LOADED in line:
                pids.add(json.loads(line)["pid"])
        return pids

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        if self.log_path is not None:
            self._log.close()
