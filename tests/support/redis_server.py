"""A real `redis-server` on a free loopback port, started and stopped by the test setup."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import redis

from deployd.server import refresher


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class RedisServer:
    port: int
    directory: str
    process: subprocess.Popen[bytes] | None = None
    # Keep data across stop() and start() on the same port (append-only file in `directory`), as
    # production Redis does.
    persistent: bool = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server not on PATH"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.persistent else "no",
                "--dir",
                self.directory,
                "--protected-mode",
                "yes",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        client = redis.Redis.from_url(self.url)
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
            finally:
                client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def kill(self) -> None:
        """Kill -9, as a crash or an OOM kill does: Redis saves nothing on the way out."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def require_redis_server() -> None:
    """Skip when redis-server is missing, except in CI, where that is a failure."""
    if shutil.which("redis-server"):
        return
    if os.environ.get("CI"):
        pytest.fail("redis-server is required in CI (install Debian's redis-server)")
    pytest.skip("redis-server not installed")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the whole session; tests flush it before use."""
    require_redis_server()
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(free_port(), directory)
        server.start()
        try:
            yield server
        finally:
            server.stop()


def initialize(client: redis.Redis, *, prefix: str = "deployd:") -> None:
    """Initialise deployd's store on `client` (`deployd store init`), as production runs it."""
    from deployd.store.redis import RedisStore

    RedisStore(client, prefix=prefix).initialize()


@pytest.fixture
def real_redis(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A flushed client of the session's real redis-server, with deployd's store initialised.

    The background refreshers of apps earlier tests built are stopped first: one still running
    would see this flush as its store going back and raise sequence floors in it (the server
    does so on purpose), and this test's first publish would not be sequence 1. Those of this
    test's apps are stopped at its end (see `stop_refreshers_at_teardown`).
    """
    refresher.stop_all()
    client = redis_server.client()
    client.flushall()
    initialize(client)
    with stop_refreshers_at_teardown():
        yield client
    client.close()


@contextmanager
def stop_refreshers_at_teardown() -> Iterator[None]:
    """Stop every background refresher when the test ends, before its store goes away.

    An app a test built on a real store outlives the test until it is garbage collected, and so
    does its refresher thread: on a closed client or a stopped server, every round of it failed
    and logged a traceback while later tests ran. Python 3.11 builds a traceback's carets with
    `ast.parse`, which is not safe in two threads at once (CPython issue 106905): one such
    traceback, formatted while a later test's Flask app compiled its URL rules (also
    `ast.parse`), failed that test's setup with "SystemError: AST constructor recursion depth
    mismatch" in a loaded full run."""
    try:
        yield
    finally:
        refresher.stop_all()
