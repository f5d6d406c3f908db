"""Real highly available Redis set-ups for tests, each in a temporary directory on free ports:

- `SentinelSet`: a primary, one replica and three `redis-sentinel` processes watching them, tuned
  so that a failover takes seconds (small down-after-milliseconds and failover-timeout);
- `RedisClusterSet`: three primaries joined by `redis-cli --cluster create`.

Everything waits on conditions (the sentinels naming a primary, the cluster reporting ok), never
on fixed sleeps.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.support.redis_server import free_port, require_redis_server, stop_refreshers_at_teardown

SERVICE = "deployd"
# Sentinel marks the primary down after this long without an answer; a failover that has not
# finished in the failover timeout is tried again.
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


def wait_until(condition: Callable[[], object], what: str, timeout: float = 60.0) -> object:
    """Poll `condition` until it returns something true (Redis errors count as false), or fail
    after `timeout` seconds, however busy the machine."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = condition()
            if found:
                return found
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)


def require_ha_binaries() -> None:
    """Skip (fail in CI) without redis-server, redis-sentinel and redis-cli."""
    require_redis_server()
    for binary in ("redis-sentinel", "redis-cli"):
        if not shutil.which(binary):
            if os.environ.get("CI"):
                pytest.fail(f"{binary} is required in CI (install Debian's redis-sentinel)")
            pytest.skip(f"{binary} not installed")


@dataclass
class Node:
    """One redis-server (or redis-sentinel) process with its own config file."""

    port: int
    directory: Path
    lines: list[str]
    sentinel: bool = False
    process: subprocess.Popen | None = None

    def start(self) -> None:
        config = self.directory / f"{self.port}.conf"
        config.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    f"dir {self.directory}",
                    'save ""',
                    "appendonly no",
                    # A replica's first copy starts at once (Redis waits 5 s by default).
                    "repl-diskless-sync-delay 0",
                    *self.lines,
                ]
            )
            + "\n"
        )
        binary = "redis-sentinel" if self.sentinel else "redis-server"
        self.process = subprocess.Popen(
            [shutil.which(binary) or binary, str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until(self.client().ping, f"{binary} on port {self.port} answering")
        except BaseException:
            self.stop()
            raise

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, socket_connect_timeout=5)

    def kill(self) -> None:
        """SIGKILL, as a crashed machine: nothing is saved or handed over."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def pause(self) -> None:
        """SIGSTOP: connected but silent, as a replica stuck on a slow disk or network."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None


@dataclass
class SentinelSet:
    """A primary, a replica and three sentinels on free loopback ports under `directory`."""

    directory: Path
    servers: list[Node] = field(default_factory=list)
    sentinels: list[Node] = field(default_factory=list)

    def start(self) -> None:
        primary = Node(free_port(), self.directory, [])
        replica = Node(free_port(), self.directory, [f"replicaof 127.0.0.1 {primary.port}"])
        self.servers = [primary, replica]
        primary.start()
        replica.start()
        wait_until(lambda: self.replicas_in_sync(primary) == 1, "the replica attached")
        for _ in range(3):
            sentinel = Node(
                free_port(),
                self.directory,
                [
                    f"sentinel monitor {SERVICE} 127.0.0.1 {primary.port} 2",
                    f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}",
                    f"sentinel parallel-syncs {SERVICE} 1",
                ],
                sentinel=True,
            )
            self.sentinels.append(sentinel)
            sentinel.start()
        # Each sentinel learns of the replica and of the other sentinels through the primary.
        wait_until(self._sentinels_agree, "the sentinels found the replica and each other")

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def primary_port(self) -> int | None:
        """The primary's port as the first sentinel that answers names it."""
        for sentinel in self.sentinels:
            try:
                address = sentinel.client().sentinel_get_master_addr_by_name(SERVICE)
            except redis.RedisError:
                continue
            if address:
                return int(address[1])
        return None

    def server_on(self, port: int) -> Node:
        return next(s for s in self.servers if s.port == port)

    def replicas_in_sync(self, node: Node) -> int:
        """How many replicas of `node` are in sync with it (past the first full copy)."""
        info = node.client().info("replication")
        replicas = (info.get(f"slave{i}", {}) for i in range(int(info["connected_slaves"])))
        return sum(1 for r in replicas if r.get("state") == "online")

    def _sentinels_agree(self) -> bool:
        for sentinel in self.sentinels:
            state = sentinel.client().sentinel_master(SERVICE)
            if int(state["num-slaves"]) < 1 or int(state["num-other-sentinels"]) < 2:
                return False
        return True

    def wait_for_failover(self, old_port: int, timeout: float = 60.0) -> int:
        """Wait until every sentinel names a primary other than `old_port`; return its port."""

        def moved() -> int | None:
            ports = {
                int(s.client().sentinel_get_master_addr_by_name(SERVICE)[1]) for s in self.sentinels
            }
            (port,) = ports if len(ports) == 1 else (old_port,)
            if port == old_port:
                return None
            role = self.server_on(port).client().info("replication")["role"]
            return port if role == "master" else None

        return int(wait_until(moved, "the sentinels promoted the replica", timeout))  # type: ignore[arg-type]

    def restart_as_replica(self, port: int, primary_port: int) -> None:
        """Start the (killed) server on `port` again as a replica of `primary_port`, as a
        supervisor restarting it under Sentinel would have it."""
        node = self.server_on(port)
        node.lines = [f"replicaof 127.0.0.1 {primary_port}"]
        node.start()
        primary = self.server_on(primary_port)
        wait_until(lambda: self.replicas_in_sync(primary) >= 1, "the old primary attached again")

    def stop(self) -> None:
        for node in [*self.sentinels, *self.servers]:
            node.stop()


def free_cluster_port() -> int:
    """A free port whose cluster bus port (10000 above it) is a valid port and free too."""
    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port


@dataclass
class RedisClusterSet:
    """Three primaries (no replicas) joined into one Redis Cluster under `directory`."""

    directory: Path
    nodes: list[Node] = field(default_factory=list)

    def start(self) -> None:
        for _ in range(3):
            port = free_cluster_port()
            node = Node(
                port,
                self.directory,
                [
                    "cluster-enabled yes",
                    f"cluster-config-file nodes-{port}.conf",
                    "cluster-node-timeout 5000",
                ],
            )
            self.nodes.append(node)
            node.start()
        subprocess.run(
            [
                shutil.which("redis-cli") or "redis-cli",
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in self.nodes),
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=60,
        )
        wait_until(self._ready, "the cluster reporting ok on every node")

    def _ready(self) -> bool:
        for node in self.nodes:
            if node.client().cluster("info").get("cluster_state") != "ok":
                return False
        return True

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def flush(self) -> None:
        for node in self.nodes:
            node.client().flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """One real three-primary Redis Cluster for the whole session; tests flush it before use."""
    require_ha_binaries()
    cluster = RedisClusterSet(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def real_cluster(redis_cluster):
    """A client of the session's cluster, flushed, with deployd's store initialised on it."""
    from deployd.server import refresher
    from deployd.store.redis import RedisStore

    refresher.stop_all()  # see tests/support/redis_server.py: real_redis
    redis_cluster.flush()
    client = redis.RedisCluster(host="127.0.0.1", port=redis_cluster.nodes[0].port)
    RedisStore(client).initialize()
    with stop_refreshers_at_teardown():
        yield client
    client.close()


@pytest.fixture
def sentinels(tmp_path):
    """A primary, a replica and three sentinels of this test's own (a failover changes them)."""
    require_ha_binaries()
    (tmp_path / "redis").mkdir()
    ha = SentinelSet(tmp_path / "redis")
    try:
        ha.start()
        with stop_refreshers_at_teardown():
            yield ha
    finally:
        ha.stop()
