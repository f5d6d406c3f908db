"""Processes the benchmark runs on loopback: redis-server, a WSGI app module under gunicorn or
granian, and nginx serving a static file.

All are started on free ports, watched with bounded waits, and stopped by process group, so a
failed run leaves nothing behind.
"""

from __future__ import annotations

import http.client
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from deployd.server.view import FIRST_VIEW_LOADED
from tests.support.redis_server import RedisServer, free_port

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_SECONDS = 30.0
VIEW_TIMEOUT_SECONDS = 120.0

__all__ = [
    "REPO",
    "SERVERS",
    "AppServer",
    "NginxStatic",
    "RedisServer",
    "free_port",
    "worker_rss_bytes",
]

# The servers deployd runs under, each started as in production: gunicorn with the checked-in
# gunicorn.conf.py (the Procfile's web line), granian through deployd's launcher (web-granian).
SERVERS = ("gunicorn", "granian")


def server_command(server: str, app: str) -> list[str]:
    if server == "gunicorn":
        return [sys.executable, "-m", "gunicorn", "-c", str(REPO / "gunicorn.conf.py"), app]
    if server == "granian":
        return [sys.executable, "-m", "deployd.server.granian", "--app", app]
    raise ValueError(f"unknown server {server!r}")


@dataclass
class AppServer:
    """WSGI `app` under `server` (SERVERS), as configured for production, on a free loopback
    port; the worker count is WEB_CONCURRENCY (else two per core) under either."""

    app: str
    env: Mapping[str, str]
    log_path: Path
    server: str = "gunicorn"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        # No shutdown drain between measurements (the drain is for load balancers in production).
        env = {"DEPLOYD_DRAIN_SECONDS": "0", **os.environ, **self.env}
        env.update(HOST="127.0.0.1", PORT=str(self.port))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                server_command(self.server, self.app),
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.server} {self.app} did not start:\n{self.log_tail()}")
            time.sleep(0.1)
        # Every worker must be up before anything is measured.
        while len(self.worker_pids()) < self.expected_workers():
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.server} {self.app}: workers did not start")
            time.sleep(0.1)

    def _healthy(self) -> bool:
        return _answers(self.address, "/healthz")

    def wait_for_every_view(self, timeout: float = VIEW_TIMEOUT_SECONDS) -> None:
        """For deployd: wait until every worker has read the store once (its log line), so no
        measured request waits for a worker's first view of a large store."""
        deadline = time.monotonic() + timeout
        while not set(self.worker_pids()) <= self._workers_with_a_view():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.server} {self.app}: workers did not read the store")
            time.sleep(0.1)

    def _workers_with_a_view(self) -> set[int]:
        pids = set()
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{") and FIRST_VIEW_LOADED in line:
                pids.add(json.loads(line)["pid"])
        return pids

    def expected_workers(self) -> int:
        if "WEB_CONCURRENCY" in self.env:
            return int(self.env["WEB_CONCURRENCY"])
        return (os.cpu_count() or 1) * 2

    def worker_pids(self) -> list[int]:
        """The pids of the master's children (the workers)."""
        if self.process is None:
            return []
        return children_of(self.process.pid)

    def cpu_seconds(self) -> float:
        """CPU time the master and its workers have used so far."""
        return _tree_cpu_seconds(self.process)

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def stop(self) -> None:
        _stop_group(self.process)
        self.process = None


NGINX_CONFIG = """\
worker_processes auto;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
{user}
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {directory}/tmp-body;
    proxy_temp_path {directory}/tmp-proxy;
    fastcgi_temp_path {directory}/tmp-fastcgi;
    uwsgi_temp_path {directory}/tmp-uwsgi;
    scgi_temp_path {directory}/tmp-scgi;
    types {{ }}
    default_type application/json;
    server {{
        listen 127.0.0.1:{port};
        root {directory}/root;
        location = /healthz {{ return 200 '{{"status":"ok"}}'; }}
    }}
}}
"""


def nginx_available() -> bool:
    """Whether nginx is installed (Debian: apt-get install nginx)."""
    return shutil.which("nginx") is not None


@dataclass
class NginxStatic:
    """nginx serving `body` as a static file at `path` on a free loopback port: the ceiling a
    server answering constant bytes can reach on this machine."""

    directory: Path
    path: str
    body: bytes
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self) -> None:
        target = self.directory / "root" / self.path.lstrip("/")
        target.parent.mkdir(parents=True)
        target.write_bytes(self.body)
        # Run as root, nginx hands its workers to `nobody`, who may not read a private temporary
        # directory: keep them this user.
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
        config = self.directory / "nginx.conf"
        config.write_text(NGINX_CONFIG.format(directory=self.directory, port=self.port, user=user))
        with open(self.directory / "stderr.log", "wb") as log:
            self.process = subprocess.Popen(
                ["nginx", "-p", str(self.directory), "-c", str(config), "-g", "daemon off;"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _answers(self.address, self.path):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nginx did not start:\n{self.log_tail()}")
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """CPU time the master and its workers have used so far."""
        return _tree_cpu_seconds(self.process)

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.directory / "error.log", lines)

    def stop(self) -> None:
        _stop_group(self.process)
        self.process = None


def _answers(address: tuple[str, int], path: str) -> bool:
    connection = http.client.HTTPConnection(*address, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def children_of(parent: int) -> list[int]:
    """Pids of the processes whose parent is `parent`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after it.
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found.append(int(entry.name))
    return sorted(found)


def worker_rss_bytes(pid: int) -> int:
    """Resident memory of process `pid` (VmRSS from /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime and stime fields 14 and 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_seconds(process: subprocess.Popen[bytes] | None) -> float:
    """CPU time a server's master process and its children (the workers) have used so far."""
    if process is None:
        return 0.0
    return sum(cpu_seconds(pid) for pid in (process.pid, *children_of(process.pid)))


def _tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a log ("" when it cannot be read)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _stop_group(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the process group of `process`, then SIGKILL it if it has not gone in 20 s."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
