"""`deployd fleet list|adoption` against a server over HTTP and against its Redis, and
`deployd license issue --max-instances`."""

from __future__ import annotations

import jwt
import pytest
import requests

from deployd.cli.main import main
from deployd.fleet.model import CheckIn
from deployd.publishing import seed_store
from deployd.store.redis import RedisStore
from tests.support.factories import write_channels
from tests.support.polling import eventually


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_fleet_list_and_adoption_through_the_server(capsys, server, token):
    license = server.issue()
    headers = {
        "Deployd-Instance-Id": "cluster-a",
        "Deployd-Agent-Version": "0.1.0",
        "Deployd-Kubernetes-Version": "v1.29.4",
    }
    response = requests.get(
        server.url + "/api/v1/operator/channel",
        auth=("license", license),
        headers=headers,
        timeout=10,
    )
    assert response.status_code == 200

    def listed() -> str:
        code, out, _ = run(capsys, "fleet", "list", "--server", server.url)
        assert code == 0
        return out

    eventually(lambda: "cluster-a" in listed())
    lines = listed().splitlines()
    assert lines[0].split() == [
        "LAST", "SEEN", "CUSTOMER", "CHANNEL", "RUNNING", "INSTANCE", "AGENT", "KUBERNETES"
    ]  # fmt: skip
    assert lines[1].split()[1:] == ["acme", "stable", "1.2.0", "cluster-a", "0.1.0", "v1.29.4"]
    code, out, _ = run(capsys, "fleet", "list", "--server", server.url, "--customer", "nobody")
    assert (code, out.splitlines()[1:]) == (0, [])

    code, out, _ = run(capsys, "fleet", "adoption", "stable", "--server", server.url)
    assert code == 0
    assert out.splitlines()[:3] == ["stable: 1 instances", "RELEASE  INSTANCES", "1.2.0    1"]


def test_fleet_commands_need_a_publisher_token(capsys, server, monkeypatch):
    monkeypatch.setenv("DEPLOYD_PUBLISHER_TOKEN", "dpub_" + "x" * 43)
    code, _, err = run(capsys, "fleet", "list", "--server", server.url)
    assert code != 0 and "publisher" in err


@pytest.mark.redis_server
def test_fleet_list_pages_from_redis(capsys, real_redis, redis_server, tmp_path):
    store = RedisStore(real_redis)
    seed_store(store, write_channels(tmp_path / "seed"))
    store.record_checkins(
        [
            CheckIn(f"k{n}", "acme", f"c{n}", "stable", "1.0.0", 1_800_000_000.0 + n)
            for n in range(3)
        ],
        feed_cap=100,
    )
    code, out, _ = run(capsys, "fleet", "list", "--redis-url", redis_server.url, "--limit", "2")
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[4] for line in lines[1:3]] == ["c2", "c1"]
    cursor = lines[3].removeprefix("more: --cursor ")
    code, out, _ = run(
        capsys, "fleet", "list", "--redis-url", redis_server.url, "--limit", "2", "--cursor", cursor
    )
    assert [line.split()[4] for line in out.splitlines()[1:]] == ["c0"]
    code, out, _ = run(capsys, "fleet", "list", "--redis-url", redis_server.url, "--behind", "2")
    assert len(out.splitlines()) == 4  # 1.0.0 is two releases behind 1.2.0
    code, out, _ = run(capsys, "fleet", "adoption", "stable", "--redis-url", redis_server.url)
    assert out.splitlines()[:3] == ["stable: 3 instances", "RELEASE  INSTANCES", "1.0.0    3"]


def test_license_issue_sets_max_instances(capsys, tmp_path):
    from tests.support.factories import make_license_kit

    kit = make_license_kit(tmp_path)
    argv = ["license", "issue", "--key", str(kit.private_key), "--customer", "acme"]
    code, out, _ = run(capsys, *argv, "--channel", "stable", "--max-instances", "3")
    assert code == 0
    assert jwt.decode(out.strip(), options={"verify_signature": False})["maxInstances"] == 3
    with pytest.raises(SystemExit):
        main([*argv, "--channel", "stable", "--max-instances", "0"])
