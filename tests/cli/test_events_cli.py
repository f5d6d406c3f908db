"""`deployd events tail [--follow]`, over HTTP and from Redis; and the events the CLI's own
changes in Redis record (publisher create/revoke, license revoke, publish)."""

from __future__ import annotations

import queue
import re
import subprocess
import sys
import threading

import pytest

from deployd.cli.main import main
from deployd.events import record_event
from deployd.keyfiles import write_key_pair
from deployd.licensing.keyring import generate_private_key
from deployd.publishing import seed_store
from deployd.store.redis import RedisStore
from tests.support.factories import CHANNEL_YAML, make_license_kit, write_channels
from tests.support.gunicorn import REPO
from tests.support.live import NEXT_RELEASE
from tests.support.publisher_auth import bearer, yaml_body

LINE = re.compile(r"^ +(\d+)  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  (\S+) *  (\S+)  (\S+)  (\S+)(.*)$")
PATIENCE = 60.0


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def parsed(out: str) -> list[tuple[str, ...]]:
    lines = []
    for line in out.splitlines():
        match = LINE.match(line)
        assert match, line
        lines.append(match.groups())
    return lines


def test_tail_over_http_prints_the_newest_events_oldest_first(capsys, server, token):
    client = server.app.test_client()
    stable = CHANNEL_YAML.format(name="stable") + NEXT_RELEASE
    assert client.put("/api/v1/channels/stable", **yaml_body(stable, token)).status_code == 200
    client.post("/api/v1/licenses/lic-1/revoke", headers=bearer(token))

    code, out, err = run(capsys, "events", "tail", "--server", server.url)
    assert code == 0, err
    assert [(t, ch, actor) for _id, t, ch, _s, actor, _d in parsed(out)] == [
        ("publish", "beta", "seed"),
        ("publish", "stable", "seed"),
        ("publish", "stable", "ci"),
        ("revoke", "-", "ci"),
    ]
    assert out.splitlines()[2].endswith("sequence=2 summary='added 1.3.0'")
    code, out, _ = run(
        capsys, "events", "tail", "-n", "1", "--type", "publish", "--server", server.url
    )
    assert [line[1:3] for line in parsed(out)] == [("publish", "stable")]
    assert parsed(out)[0][0] == "3"


@pytest.fixture
def redis_url(real_redis, redis_server, tmp_path, monkeypatch):
    seed_store(RedisStore(real_redis), write_channels(tmp_path / "seed"))
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    return redis_server.url


@pytest.mark.redis_server
def test_changes_made_in_redis_by_the_cli_are_events_and_tail_reads_them(
    capsys, redis_url, tmp_path, monkeypatch
):
    monkeypatch.setenv("USER", "carol")
    code, token, _ = run(
        capsys, "publisher", "create", "ci", "--action", "publish", "--channel", "stable"
    )
    assert code == 0
    assert run(capsys, "license", "revoke", "lic-9", "--reason", "refund")[0] == 0
    channels = write_channels(tmp_path / "channels")
    (channels / "stable.yaml").write_text(CHANNEL_YAML.format(name="stable") + NEXT_RELEASE)
    assert run(capsys, "publish", str(channels), "--publisher", "bob")[0] == 0
    assert run(capsys, "publisher", "revoke", "ci")[0] == 0

    code, out, err = run(capsys, "events", "tail", "--redis-url", redis_url)
    assert code == 0, err
    lines = parsed(out)
    assert [(t, ch, actor) for _id, t, ch, _s, actor, _d in lines] == [
        ("publish", "beta", "seed"),
        ("publish", "stable", "seed"),
        ("publisher", "-", "carol"),
        ("revoke", "-", "cli"),
        ("publish", "stable", "bob"),
        ("publisher", "-", "carol"),
    ]
    assert lines[2][5].strip() == "name=ci change=created scopes='publish on stable'"
    assert lines[5][5].strip() == "name=ci change=revoked"
    assert token.strip() not in out
    code, out, _ = run(capsys, "events", "tail", "--type", "publisher", "--type", "revoke")
    assert [line[1] for line in parsed(out)] == ["publisher", "revoke", "publisher"]


@pytest.mark.redis_server
def test_tail_follow_prints_new_events_as_they_are_recorded(redis_url, real_redis):
    command = [sys.executable, "-m", "deployd", "events", "tail", "--follow", "--interval", "0.05"]
    with subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as process:
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_read_lines, args=(process, lines), daemon=True).start()
        try:
            for _ in range(2):  # the seed's two publishes
                assert "publish" in lines.get(timeout=PATIENCE)
            record_event(RedisStore(real_redis), "halt", channel="stable", data={"release": "1.3"})
            line = lines.get(timeout=PATIENCE)
            assert parsed(line)[0][1:3] == ("halt", "stable")
            assert line.rstrip().endswith("deployd  release=1.3")
        finally:
            process.terminate()
            process.wait(timeout=PATIENCE)


def _read_lines(process: subprocess.Popen, lines: queue.Queue[str]) -> None:
    for line in process.stdout:
        lines.put(line)


@pytest.fixture
def production(tmp_path, monkeypatch):
    """The environment of a production server (Redis, own keys) that `config check` accepts."""
    signing_key, _ = write_key_pair(generate_private_key("EdDSA"), tmp_path / "signing", "spec-1")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # config check connects to nothing
    monkeypatch.setenv("DEPLOYD_KEYS_DIR", str(make_license_kit(tmp_path).keys_dir))
    monkeypatch.setenv("DEPLOYD_SIGNING_KEY", str(signing_key))
    return monkeypatch


def check(capsys) -> tuple[int, str]:
    try:
        code = main(["config", "check"])
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err


def test_config_check_refuses_a_plain_http_webhook_in_production_unless_allowed(production, capsys):
    production.setenv("DEPLOYD_WEBHOOK_URLS", "https://hooks.example.com/deployd")
    assert check(capsys) == (0, "")
    production.setenv("DEPLOYD_WEBHOOK_URLS", "http://hooks.example.com/deployd?key=s3cr3t")
    code, err = check(capsys)
    assert code == 3
    assert "must use https://" in err and "hooks.example.com" in err and "s3cr3t" not in err
    production.setenv("DEPLOYD_WEBHOOK_ALLOW_HTTP", "1")
    assert check(capsys) == (0, "")


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("DEPLOYD_WEBHOOK_URLS", "ftp://user:pa55word@hooks.example.com/", "http:// or https://"),
        ("DEPLOYD_WEBHOOK_URLS", "https:///no-host", "with a host"),
        ("DEPLOYD_WEBHOOK_EVENTS", "publish,nonsense", "unknown event type nonsense"),
    ],
)
def test_config_check_refuses_an_unusable_webhook_setting(
    production, capsys, variable, value, said
):
    production.setenv(variable, value)
    code, err = check(capsys)
    assert code == 3 and said in err
    assert "pa55word" not in err
