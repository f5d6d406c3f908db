"""A real redis-server that restarts empty or from an older RDB snapshot, under a running app.

The app stands for a running worker (its ServerState and caches); a second app made after the
restart stands for a freshly started one. Nothing waits a fixed time: every check waits for its
condition with a generous deadline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask.testing import FlaskClient

from deployd.channels import parse_channel_text
from deployd.cli.main import main
from deployd.keyfiles import write_key_pair
from deployd.licensing.keyring import generate_private_key
from deployd.publishers import token_hash
from deployd.publishing import publish_channel
from deployd.server.app import create_app
from deployd.server.settings import Settings
from deployd.store.redis import RedisStore
from tests.support.factories import CHANNEL_YAML, LicenseKit
from tests.support.redis_server import RedisServer, free_port, require_redis_server
from tests.support.world import World

pytestmark = pytest.mark.redis_server

SPEC = "/api/v1/operator/channel"


@dataclass
class Served:
    redis: RedisServer
    store: RedisStore  # the operator's own connection
    settings: Settings
    kit: LicenseKit
    license: str  # stays valid
    revoked: str  # revoked before anything is lost

    def app_client(self) -> FlaskClient:
        """A new worker: its own connection, state and caches."""
        return create_app(self.settings, store=RedisStore.from_url(self.redis.url)).test_client()

    def publish(self, n: int) -> int:
        text = CHANNEL_YAML.format(name="stable") + release(n)
        channel = parse_channel_text(text, filename="stable.yaml")
        return publish_channel(self.store, channel, source=text, publisher="t").record.sequence

    def cli(self, capsys, *argv: str) -> tuple[int, str, str]:
        code = main([*argv, "--redis-url", self.redis.url])
        out, err = capsys.readouterr()
        return code, out, err


def release(n: int) -> str:
    return f"  - version: 1.{n}.0\n    chart: {{version: 0.{n}.0}}\n"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    require_redis_server()
    (tmp_path / "redis").mkdir()
    redis = RedisServer(free_port(), str(tmp_path / "redis"))
    redis.start()
    store = RedisStore.from_url(redis.url)
    store.initialize()
    signing_key, _ = write_key_pair(generate_private_key("EdDSA"), tmp_path / "signing", "s1")
    world = World(
        tmp_path,
        store=store,
        redis_url=redis.url,
        signing_key=str(signing_key),
        spec_window_seconds=10**9,  # one window for the whole test: bodies compare byte for byte
        rate_limit_enabled=False,
    )
    settings, kit = world.settings, world.kit
    license, revoked = kit.issue(), kit.issue(customer="gone")
    jti = jwt.decode(revoked, options={"verify_signature": False})["jti"]
    store.revoke(jti, reason="churned", by="test")
    try:
        yield Served(redis, store, settings, kit, license, revoked)
    finally:
        store.close()
        redis.stop()


def bearer(license: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + license}


def wait_for(answer: Callable[[], Any], wanted: Callable[[Any], bool], timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        got = answer()
        if wanted(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.02)


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.get_json()["error"]["code"]


def spec_of(response) -> tuple[int, str]:
    assert response.status_code == 200, response.get_data(as_text=True)
    metadata = json.loads(response.data)["metadata"]
    return int(metadata["sequence"]), metadata["release"]


def test_backup_then_restore_after_redis_restarted_empty_serves_the_same_bytes(
    served, tmp_path, capsys
):
    served.publish(3)
    served.store.add_publisher("ci", "c" * 64)
    worker = served.app_client()
    before = worker.get(SPEC, headers=bearer(served.license))
    assert spec_of(before) == (2, "1.3.0")
    assert error_of(worker.get(SPEC, headers=bearer(served.revoked))) == (403, "revoked")
    backup = tmp_path / "backups" / "deployd.json"
    backup.parent.mkdir()
    code, _, err = served.cli(capsys, "store", "backup", str(backup))
    assert (
        code == 0
        and "2 channels, 1 revocations, 1 publishers, 0 customer records and 0 halts" in err
    )
    assert [p.name for p in backup.parent.iterdir()] == ["deployd.json"]

    served.redis.kill()
    served.redis.start()  # nothing was persisted: an empty Redis

    lost = wait_for(lambda: worker.get(SPEC, headers=bearer(served.license)), _is_503)
    assert error_of(lost) == (503, "store_uninitialized")
    assert "deployd store" in lost.get_json()["error"]["message"]
    for path, method, body in [
        (SPEC + "/release/1.2.0", "GET", None),
        ("/api/v1/licenses/validate", "POST", {"license": served.license}),
        ("/readyz", "GET", None),
    ]:
        response = worker.open(path, method=method, json=body, headers=bearer(served.license))
        assert error_of(response) == (503, "store_uninitialized"), path
        assert response.headers["Retry-After"]
    fresh = served.app_client()
    assert error_of(fresh.get(SPEC, headers=bearer(served.revoked))) == (503, "store_uninitialized")
    code, out, _ = served.cli(capsys, "store", "status")
    assert code == 1 and "epoch: none: NOT INITIALISED" in out

    code, _, err = served.cli(capsys, "store", "restore", str(backup))
    assert code == 0 and "new epoch" in err

    for client in (worker, fresh):
        after = wait_for(lambda c=client: c.get(SPEC, headers=bearer(served.license)), _is_200)
        assert (after.data, after.headers["ETag"]) == (before.data, before.headers["ETag"])
        assert error_of(client.get(SPEC, headers=bearer(served.revoked))) == (403, "revoked")
        assert client.get("/readyz").status_code == 200
    assert served.store.publisher_for_hash("c" * 64).name == "ci"
    code, out, _ = served.cli(capsys, "store", "status")
    assert code == 0
    assert "channels: 2 (beta 1, stable 2)" in out and "revocations: 1" in out
    assert "NOT PERSISTED" in out
    code, _, err = served.cli(capsys, "store", "restore", str(backup))
    assert code == 1 and "--force" in err


def test_redis_back_from_an_older_rdb_snapshot_never_serves_one_sequence_as_two_documents(
    served,
):
    served_as: dict[int, str] = {}  # every (sequence, release) any worker served

    def poll(client: FlaskClient) -> tuple[int, str]:
        sequence, release = spec_of(client.get(SPEC, headers=bearer(served.license)))
        assert served_as.setdefault(sequence, release) == release, "one sequence, two documents"
        return sequence, release

    def poll_through_outage(client: FlaskClient) -> tuple[int | None, str]:
        # While Redis restarts, license checks fail closed (503) until the worker's background
        # refresh reads the revocation list again: that is "not yet", not an answer.
        response = client.get(SPEC, headers=bearer(served.license))
        if response.status_code == 503:
            return None, error_of(response)[1]
        return poll(client)

    old_worker = served.app_client()
    assert poll(old_worker) == (1, "1.2.0")
    served.store.client.save()  # the RDB snapshot Redis restarts from
    assert [served.publish(n) for n in (3, 4)] == [2, 3]
    assert wait_for(lambda: poll(old_worker), lambda got: got[0] == 3) == (3, "1.4.0")

    served.redis.kill()
    served.redis.start()  # loads the snapshot: sequence 1, same epoch, an older generation
    assert served.store.sequences() == {"stable": 1, "beta": 1}

    back = wait_for(lambda: poll_through_outage(old_worker), lambda got: got[0] not in (3, None))
    assert back == (1, "1.2.0"), "the old worker kept serving what the store no longer has"
    new_worker = served.app_client()
    assert wait_for(lambda: poll_through_outage(new_worker), lambda got: got[0]) == (1, "1.2.0")
    assert served.store.floors()["stable"] >= 3, "the old worker recorded what it had served"

    assert served.publish(5) == 4
    for worker in (old_worker, new_worker):
        assert wait_for(lambda w=worker: poll(w), lambda got: got[0] == 4) == (4, "1.5.0")


def _is_503(response) -> bool:
    return response.status_code == 503


def _is_200(response) -> bool:
    return response.status_code == 200


def test_store_init_status_and_floors_on_the_command_line(capsys, real_redis, redis_server):
    real_redis.flushall()

    def cli(*argv: str) -> tuple[int, str, str]:
        code = main([*argv, "--redis-url", redis_server.url])
        out, err = capsys.readouterr()
        return code, out, err

    assert cli("store", "status")[0] == 1
    code, _, err = cli("store", "init", "--sequence-floor", "10")
    assert code == 0 and "epoch" in err
    code, _, err = cli("store", "init")
    assert code == 1 and "initialised already" in err
    store = RedisStore(real_redis)
    doc = {"name": "stable", "releases": []}
    record = store.publish("stable", document=doc, source="", digest="d", publisher="t", summary="")
    assert record.sequence == 11
    code, out, _ = cli("store", "status")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"store: Redis at {store.server}"
    assert lines[1].startswith("epoch: ") and "NOT" not in lines[1]
    assert lines[2:6] == [
        "generation: 1",
        "channels: 1 (stable 11)",
        "revocations: 0",
        "high-water marks: * 10",
    ]
    assert lines[6].startswith("persistence: appendonly=no; save=''")
    assert "NOT PERSISTED" in lines[6]


def test_store_init_can_start_above_a_backup(capsys, real_redis, redis_server, tmp_path):
    store = RedisStore(real_redis)
    doc = {"name": "stable", "releases": []}
    for _ in range(3):
        store.publish("stable", document=doc, source="", digest="d", publisher="t", summary="")
    backup = tmp_path / "b.json"
    assert main(["store", "backup", str(backup), "--redis-url", redis_server.url]) == 0
    real_redis.flushall()
    args = ["store", "init", "--floors-from", str(backup), "--redis-url", redis_server.url]
    assert main(args) == 0
    record = store.publish("stable", document=doc, source="", digest="d", publisher="t", summary="")
    assert record.sequence == 4
    capsys.readouterr()


def test_the_publisher_token_hash_is_the_only_trace_of_a_token_in_a_backup(
    real_redis, redis_server, tmp_path
):
    store = RedisStore(real_redis)
    store.add_publisher("ci", token_hash("dpub_secret"))
    backup = tmp_path / "b.json"
    assert main(["store", "backup", str(backup), "--redis-url", redis_server.url]) == 0
    text = backup.read_text()
    assert "dpub_secret" not in text and token_hash("dpub_secret") in text
    assert backup.stat().st_mode & 0o077 == 0
