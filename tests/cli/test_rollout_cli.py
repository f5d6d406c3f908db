"""`deployd rollout status|halt|resume` and halts in `deployd history`, over HTTP and in Redis."""

from __future__ import annotations

import pytest

from deployd.cli.main import main
from deployd.cli.remote import TOKEN_ENV
from deployd.publishers import Scopes
from deployd.publishing import seed_store
from deployd.rollouts.records import Report
from deployd.store.redis import RedisStore
from tests.support.factories import write_channels


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_halt_resume_and_history_through_the_server(capsys, server, token):
    server.world.store.record_outcomes(
        [Report("stable", "1.2.0", "c1", "failed", "", "2026-11-29T14:00:00Z", "acme")]
    )
    at = ["--server", server.url]
    code, out, _ = run(capsys, "rollout", "status", "stable", *at)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["RELEASE", "SERVED", "OLDER", "APPLIED"]
    assert lines[1].split() == ["1.2.0", "0", "0", "0", "1", "0", "100%", "-"]
    assert [line.split()[0] for line in lines[1:]] == ["1.2.0", "1.1.0", "1.0.0"]

    code, out, _ = run(capsys, "rollout", "halt", "stable", "1.2.0", "--reason", "bad", *at)
    assert code == 0
    assert out.splitlines()[0] == "halted release 1.2.0 of channel stable"
    assert "HALTED" in out and "by ci: bad" in out
    code, out, _ = run(capsys, "rollout", "halt", "stable", "1.2.0", *at)
    assert out.splitlines()[0] == "release 1.2.0 of channel stable was halted already"
    code, out, _ = run(capsys, "rollout", "status", "stable", "1.2.0", *at)
    assert len(out.splitlines()) == 2 and "HALTED" in out
    code, out, _ = run(capsys, "rollout", "resume", "stable", "1.2.0", *at)
    assert out.splitlines()[0] == "resumed release 1.2.0 of channel stable"

    code, out, _ = run(capsys, "history", "stable", *at)
    lines = out.splitlines()
    assert "resume 1.2.0: resumed by hand" in lines[0]
    assert "halt 1.2.0: bad (served 0, applied 0, failed 1, rolled back 0, rate 100%)" in lines[1]
    assert lines[2].split()[0] == "1"  # the seed publish, its sequence untouched


def test_halting_over_http_needs_the_rollout_scope(capsys, server, monkeypatch):
    reader = server.world.publisher_token("ci", scopes=Scopes.of(["publish"], ["*"]))
    monkeypatch.setenv(TOKEN_ENV, reader)
    code, _, err = run(capsys, "rollout", "halt", "stable", "1.2.0", "--server", server.url)
    assert code != 0 and "scope" in err
    code, _, _ = run(capsys, "rollout", "status", "stable", "--server", server.url)
    assert code == 0


@pytest.mark.redis_server
def test_halt_and_resume_in_redis(capsys, real_redis, redis_server, tmp_path):
    seed_store(RedisStore(real_redis), write_channels(tmp_path / "seed"))
    local = ["--redis-url", redis_server.url, "--publisher", "oncall"]
    code, out, _ = run(capsys, "rollout", "halt", "stable", "1.2.0", *local)
    assert code == 0 and out.startswith("halted release 1.2.0")
    assert RedisStore(real_redis).halts()["stable"]["1.2.0"].by == "oncall"
    code, out, _ = run(capsys, "history", "stable", "--redis-url", redis_server.url)
    assert "oncall" in out.splitlines()[0] and "halt 1.2.0" in out.splitlines()[0]
    code, out, _ = run(capsys, "rollout", "resume", "stable", "1.2.0", *local)
    assert code == 0 and RedisStore(real_redis).halts() == {}
