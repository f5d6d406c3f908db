"""Load generators: wrk with bench/requests.lua, or a Python fallback when wrk is not installed.

Both drive a closed loop of `connections` concurrent clients for `duration` seconds over a list of
prepared requests and report requests/s with the 50th and 99th latency percentiles. A run fails
(raises LoadError) when any request errs or answers an unexpected status, so a misconfigured run
can never pass for a fast one.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

LUA_SCRIPT = Path(__file__).resolve().parent / "requests.lua"


class LoadError(RuntimeError):
    """A load run saw failures (connection errors, timeouts, unexpected statuses)."""


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    authorization: str = ""
    if_none_match: str = ""
    body: str = ""

    def line(self) -> str:
        fields = (self.method, self.path, self.authorization, self.if_none_match, self.body)
        if any("\t" in f or "\n" in f for f in fields):
            raise ValueError("request fields may not contain tabs or newlines")
        return "\t".join(fields)

    def raw(self, host: str) -> bytes:
        # One request a connection, as operators poll (every few minutes); the readers here read
        # each answer to the end of its connection.
        lines = [f"{self.method} {self.path} HTTP/1.1", f"Host: {host}", "Connection: close"]
        if self.authorization:
            lines.append(f"Authorization: {self.authorization}")
        if self.if_none_match:
            lines.append(f"If-None-Match: {self.if_none_match}")
        body = self.body.encode()
        if body:
            lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def default_generator() -> str:
    """wrk when it is installed (Debian: apt-get install wrk), else the Python fallback."""
    return "wrk" if shutil.which("wrk") else "python"


def run_load(
    address: tuple[str, int],
    requests: list[Request],
    *,
    expected_status: int,
    duration: float,
    connections: int,
    work_dir: Path,
    generator: str,
) -> LoadResult:
    """Drive `requests` (cycled) at `address` with `generator` ("wrk" or "python"); every
    answer must have `expected_status`."""
    job = _Job(address, requests, expected_status, duration, connections)
    if generator == "wrk":
        return _wrk(job, work_dir)
    return _python(job)


@dataclass(frozen=True)
class _Job:
    """One load run, whichever generator drives it."""

    address: tuple[str, int]
    requests: list[Request]
    expected_status: int
    duration: float
    connections: int


def _wrk(job: _Job, work_dir: Path) -> LoadResult:
    address, requests, duration, connections = (
        job.address,
        job.requests,
        job.duration,
        job.connections,
    )
    request_file = work_dir / "requests.tsv"
    request_file.write_text("\n".join(r.line() for r in requests) + "\n")
    host, port = address
    command = [
        "wrk",
        "--threads",
        "2",
        "--connections",
        str(connections),
        "--duration",
        f"{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "--script",
        str(LUA_SCRIPT),
        f"http://{host}:{port}",
        "--",
        str(request_file),
    ]
    finished = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 30, check=False
    )
    if finished.returncode != 0:
        raise LoadError(f"wrk failed ({finished.returncode}): {finished.stderr.strip()}")
    line = next((x for x in finished.stdout.splitlines() if x.startswith("{")), None)
    if line is None:
        raise LoadError(f"wrk printed no result:\n{finished.stdout}")
    result = json.loads(line)
    failures = {
        k: result[k]
        for k in ("connect_errors", "write_errors", "status_errors", "timeouts")
        if result[k]
    }
    if failures:
        raise LoadError(f"wrk saw failures: {failures}")
    if result["requests"] == 0:
        raise LoadError("wrk completed no request")
    # wrk counts only statuses >= 400 as errors: make sure the answers are the expected kind.
    _check_sample(address, requests, job.expected_status)
    return LoadResult(
        requests=result["requests"],
        seconds=result["duration_us"] / 1e6,
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
    )


def _check_sample(
    address: tuple[str, int], requests: list[Request], expected_status: int, count: int = 20
) -> None:
    step = max(1, len(requests) // count)
    for request in requests[::step][:count]:
        status, _ = fetch(address, request)
        if status != expected_status:
            raise LoadError(
                f"{request.method} {request.path} answered {status}, not {expected_status}"
            )


def fetch(address: tuple[str, int], request: Request, timeout: float = 5.0) -> tuple[int, bytes]:
    """Send one request on a fresh connection; return (status, whole raw response)."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request.raw(f"{address[0]}:{address[1]}"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    return int(raw.split(b" ", 2)[1]), raw


def _python(job: _Job) -> LoadResult:
    address, duration, connections = job.address, job.duration, job.connections
    processes = min(connections, 2)
    shares = [connections // processes + (i < connections % processes) for i in range(processes)]
    payloads = [r.raw(f"{address[0]}:{address[1]}") for r in job.requests]
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        parts = pool.starmap(
            _python_worker,
            [(address, payloads, i * 7919, n, duration) for i, n in enumerate(shares)],
        )
    latencies = sorted(x for part, _, _ in parts for x in part)
    statuses: Counter[int] = sum((statuses for _, statuses, _ in parts), Counter())
    errors = sum(errors for _, _, errors in parts)
    if errors or set(statuses) - {job.expected_status}:
        raise LoadError(f"python load saw errors={errors} statuses={dict(statuses)}")
    if not latencies:
        raise LoadError("python load completed no request")
    return LoadResult(
        requests=len(latencies),
        seconds=duration,
        p50_ms=latencies[len(latencies) // 2] * 1000,
        p99_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    )


def _python_worker(
    address: tuple[str, int], payloads: list[bytes], start: int, threads: int, duration: float
) -> tuple[list[float], Counter[int], int]:
    """One process of the fallback: `threads` closed-loop clients until `duration` is over."""
    deadline = time.monotonic() + duration
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors = 0
    lock = threading.Lock()

    def client(offset: int) -> None:
        nonlocal errors
        mine: list[float] = []
        seen: Counter[int] = Counter()
        failed = 0
        i = offset
        while time.monotonic() < deadline:
            payload = payloads[i % len(payloads)]
            i += 1
            began = time.monotonic()
            try:
                with socket.create_connection(address, timeout=5) as sock:
                    sock.sendall(payload)
                    chunks = []
                    while chunk := sock.recv(65536):
                        chunks.append(chunk)
            except OSError:
                failed += 1
                continue
            mine.append(time.monotonic() - began)
            status_line = b"".join(chunks).split(b"\r\n", 1)[0].split(b" ", 2)
            seen[int(status_line[1]) if len(status_line) > 1 else 0] += 1
        with lock:
            latencies.extend(mine)
            statuses.update(seen)
            errors += failed

    workers = [threading.Thread(target=client, args=(start + n * 104729,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return latencies, statuses, errors
