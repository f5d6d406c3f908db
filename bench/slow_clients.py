"""Slow clients (slowloris) against deployd: `python bench/slow_clients.py [--quick]`.

Starts redis-server and deployd under the checked-in gunicorn.conf.py on loopback, opens N sockets
that send a request head one byte at a time and never finish it (reconnecting as soon as the
server closes one, as a real attack does), and meanwhile polls a valid license's spec at a steady
rate. Prints answered/attempted and the latency percentiles of the answered polls; exits 1 when
fewer than 99% were answered. Everything is on loopback and bounded in time.

`--server granian` runs deployd under granian (deployd/server/granian.py) instead.
`--gunicorn-args` overrides the config file's settings (GUNICORN_CMD_ARGS), to measure other worker
models: `--gunicorn-args "--worker-class sync"`, `"--worker-class gthread --threads 64"`.
"""

from __future__ import annotations

import argparse
import errno
import http.client
import itertools
import math
import selectors
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from deployd.protocol import SPEC_PATH

REQUIRED_ANSWERED = 0.99
CONNECT_TIMEOUT_SECONDS = 2.0
ATTACK_READY_SECONDS = 30.0
# A request head that never ends: the request line, then header lines without the blank line.
SLOW_HEAD = (
    b"GET "
    + SPEC_PATH.encode()
    + b" HTTP/1.1\r\nHost: deployd\r\n"
    + b"".join(b"X-Slow-%d: %d\r\n" % (i, i) for i in range(400))
)


class Dribblers:
    """`count` sockets sending SLOW_HEAD one byte every `interval` seconds to `address`.

    A socket the server closes (or answers) is replaced at once by a new one. One thread drives
    every socket; `stop()` closes them all.
    """

    def __init__(self, address: tuple[str, int], count: int, interval: float = 1.0) -> None:
        self.address = address
        self.count = count
        self.interval = interval
        self.opened = 0  # connections made in all
        self.closed_by_server = 0
        self._selector = selectors.DefaultSelector()
        self._sent: dict[socket.socket, int] = {}  # socket -> bytes of SLOW_HEAD sent
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dribblers", daemon=True)

    @property
    def connected(self) -> int:
        return len(self._sent)

    def start(self) -> None:
        self._thread.start()

    def wait_connected(self, timeout: float = ATTACK_READY_SECONDS) -> None:
        """Return once every socket is connected; raise after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.connected < self.count:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"only {self.connected} of {self.count} slow sockets connected")
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            next_tick = time.monotonic()
            while not self._stop.is_set():
                now = time.monotonic()
                if now >= next_tick:
                    self._tick()
                    next_tick = now + self.interval
                timeout = max(0.0, min(next_tick - time.monotonic(), 0.2))
                for key, _ in self._selector.select(timeout=timeout):
                    self._on_readable(key.fileobj)  # type: ignore[arg-type]
        finally:
            for sock in list(self._sent):
                self._close(sock)
            self._selector.close()

    def _tick(self) -> None:
        for _ in range(self.count - len(self._sent)):
            self._connect()
        for sock in list(self._sent):
            self._send_byte(sock)

    def _connect(self) -> None:
        try:
            sock = socket.create_connection(self.address, timeout=CONNECT_TIMEOUT_SECONDS)
        except OSError:
            return  # the next tick tries again
        sock.setblocking(False)
        self.opened += 1
        self._sent[sock] = 0
        self._selector.register(sock, selectors.EVENT_READ)
        self._send_byte(sock)

    def _send_byte(self, sock: socket.socket) -> None:
        offset = self._sent[sock]
        try:
            sock.send(SLOW_HEAD[offset : offset + 1])
        except BlockingIOError:
            return
        except OSError:
            self._replace(sock)
            return
        self._sent[sock] = min(offset + 1, len(SLOW_HEAD) - 1)

    def _on_readable(self, sock: socket.socket) -> None:
        # The server closed the socket or answered it (an error page): either way it is done.
        try:
            sock.recv(4096)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                return
        self._replace(sock)

    def _replace(self, sock: socket.socket) -> None:
        self.closed_by_server += 1
        self._close(sock)
        if not self._stop.is_set():
            self._connect()

    def _close(self, sock: socket.socket) -> None:
        self._sent.pop(sock, None)
        try:
            self._selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()


@dataclass
class PollResults:
    attempted: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds, of the answered polls
    failures: Counter[str] = field(default_factory=Counter)

    @property
    def answered(self) -> int:
        return len(self.latencies)

    @property
    def answered_share(self) -> float:
        return self.answered / self.attempted if self.attempted else 0.0

    def percentile_ms(self, percent: float) -> float:
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, math.ceil(percent / 100 * len(ordered)) - 1))
        return ordered[index] * 1000

    def summary(self) -> str:
        line = f"polls answered: {self.answered}/{self.attempted} ({self.answered_share:.1%})"
        if self.latencies:
            line += (
                f"; latency ms p50 {self.percentile_ms(50):.0f}, p90 {self.percentile_ms(90):.0f},"
                f" p99 {self.percentile_ms(99):.0f}, max {max(self.latencies) * 1000:.0f}"
                f" (mean {statistics.fmean(self.latencies) * 1000:.0f})"
            )
        if self.failures:
            line += "; not answered: " + ", ".join(f"{n} {k}" for k, n in self.failures.items())
        return line


class Poller:
    """Polls `path` at `rate` requests a second, each on a new connection, as operators do.

    A poll is answered when a 200 arrives within `timeout` seconds (per socket operation).
    Polls are started on schedule whether or not earlier ones have finished.
    """

    def __init__(
        self,
        address: tuple[str, int],
        authorization: str,
        *,
        rate: float,
        timeout: float,
        path: str = SPEC_PATH,
    ) -> None:
        self.address = address
        self.authorization = authorization
        self.rate = rate
        self.timeout = timeout
        self.path = path

    def run(self, duration: float) -> PollResults:
        results = PollResults()
        lock = threading.Lock()
        total = max(1, round(duration * self.rate))
        workers = math.ceil(self.rate * self.timeout) + 2
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="poller") as pool:
            for i in itertools.count():
                if i == total:
                    break
                time.sleep(max(0.0, start + i / self.rate - time.monotonic()))
                pool.submit(self._poll_into, results, lock)
        return results

    def _poll_into(self, results: PollResults, lock: threading.Lock) -> None:
        began = time.monotonic()
        outcome = self._poll()
        elapsed = time.monotonic() - began
        with lock:
            results.attempted += 1
            if outcome == "200":
                results.latencies.append(elapsed)
            else:
                results.failures[outcome] += 1

    def _poll(self) -> str:
        connection = http.client.HTTPConnection(*self.address, timeout=self.timeout)
        try:
            connection.request("GET", self.path, headers={"Authorization": self.authorization})
            response = connection.getresponse()
            response.read()
            return str(response.status)
        except TimeoutError:
            return "timeout"
        except (OSError, http.client.HTTPException) as e:
            return type(e).__name__
        finally:
            connection.close()


def attack(
    address: tuple[str, int],
    authorization: str,
    *,
    sockets: int,
    duration: float,
    rate: float,
    timeout: float,
    interval: float = 1.0,
) -> tuple[PollResults, Dribblers]:
    """Poll `address` for `duration` seconds while `sockets` slow sockets dribble at it."""
    dribblers = Dribblers(address, sockets, interval)
    dribblers.start()
    try:
        dribblers.wait_connected()
        results = Poller(address, authorization, rate=rate, timeout=timeout).run(duration)
    finally:
        dribblers.stop()
    return results, dribblers


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=64, help="slow sockets (default 64)")
    parser.add_argument("--duration", type=float, help="seconds of polling (default 60)")
    parser.add_argument("--quick", action="store_true", help="15 s of polling instead of 60")
    parser.add_argument("--rate", type=float, default=5.0, help="polls a second (default 5)")
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds a poll may wait (default 10)"
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between two bytes (default 1)"
    )
    parser.add_argument(
        "--workers", type=int, help="WEB_CONCURRENCY (default: what gunicorn.conf.py picks)"
    )
    parser.add_argument(
        "--server",
        choices=["gunicorn", "granian"],
        default="gunicorn",
        help="the server deployd runs under (default gunicorn; granian: deployd/server/granian.py)",
    )
    parser.add_argument(
        "--gunicorn-args",
        default="",
        help="settings over gunicorn.conf.py, as GUNICORN_CMD_ARGS (to measure other workers)",
    )
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 15.0 if args.quick else 60.0
    return args


def main(argv: list[str]) -> int:
    # Run as a script from anywhere: the repository root holds the `bench` and `tests` packages.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.servers import AppServer, RedisServer, free_port
    from bench.world import (
        basic_auth,
        channel_document,
        channel_yaml,
        issue_licenses,
        make_keys,
        publish_yaml,
    )
    from deployd.store.redis import RedisStore

    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="deployd-slow-") as tmp:
        directory = Path(tmp)
        redis_server = RedisServer(free_port(), str(directory))
        redis_server.start()
        try:
            store = RedisStore.from_url(redis_server.url)
            # As `deployd store init` does: a store without an epoch serves nothing.
            store.initialize()
            publish_yaml(store, channel_yaml(channel_document("stable", 6)), name="stable")
            keys = make_keys(directory / "keys")
            (license,) = issue_licenses(keys, ["stable"], 1)
            env = {
                "REDIS_URL": redis_server.url,
                "DEPLOYD_KEYS_DIR": str(keys.license_keys_dir),
                "DEPLOYD_SIGNING_KEY": str(keys.signing_key),
                "DEPLOYD_RATE_LIMIT_PER_MINUTE": str(10**9),
                "DEPLOYD_LOG_LEVEL": "WARNING",
                "GUNICORN_CMD_ARGS": args.gunicorn_args,
            }
            if args.workers:
                env["WEB_CONCURRENCY"] = str(args.workers)
            server = AppServer(
                "deployd.wsgi:app", env, directory / f"{args.server}.log", args.server
            )
            server.start()
            try:
                print(
                    f"deployd slow clients: {args.sockets} sockets sending a byte every"
                    f" {args.interval:g} s, {args.rate:g} polls/s for {args.duration:g} s"
                    f" (timeout {args.timeout:g} s); {args.server}"
                    f" {args.gunicorn_args or '(as checked in)'},"
                    f" {len(server.worker_pids())} workers",
                    flush=True,
                )
                results, dribblers = attack(
                    server.address,
                    basic_auth(license),
                    sockets=args.sockets,
                    duration=args.duration,
                    rate=args.rate,
                    timeout=args.timeout,
                    interval=args.interval,
                )
            finally:
                server.stop()
        finally:
            redis_server.stop()
    print(
        f"slow sockets: {dribblers.opened} connections opened,"
        f" {dribblers.closed_by_server} closed by the server"
    )
    print(results.summary())
    passed = results.answered_share >= REQUIRED_ANSWERED
    verdict = "ok" if passed else "FAILED"
    print(f"{verdict}: {results.answered_share:.1%} answered (target >= {REQUIRED_ANSWERED:.0%})")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
