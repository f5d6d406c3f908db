"""What a new user meets first: the bare command, help texts, and output piped into `head`."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from deployd.cli.main import main
from deployd.cli.remote import SERVER_ENV, TOKEN_ENV


def test_the_bare_command_lists_the_commands(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    for command in ("serve", "agent", "publish", "history", "license", "publisher"):
        assert f"    {command}" in err


def test_read_only_commands_offer_no_write_options(capsys):
    with pytest.raises(SystemExit):
        main(["history", "--help"])
    out = capsys.readouterr().out
    assert "--publisher" not in out
    assert "write into" not in out
    assert "--redis-url" in out


def test_output_into_a_reader_that_leaves_early_ends_quietly(server, token):
    env = {**os.environ, SERVER_ENV: server.url, TOKEN_ENV: token}
    process = subprocess.Popen(
        [sys.executable, "-m", "deployd.cli.main", "history", "stable", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    process.stdout.close()  # as `| head -0` would: nobody reads what it prints
    _, err = process.communicate(timeout=60)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
    assert process.returncode == 141


@pytest.mark.parametrize(
    "url",
    [
        "redis://:hunter2@127.0.0.1:6379/0?cluster=true",
        "memcached://:hunter2@127.0.0.1:11211",
        "redis+sentinel://:hunter2@127.0.0.1:26379",
        "redis+sentinel://:hunter2@127.0.0.1/deployd",
        "redis+sentinel://:hunter2@127.0.0.1:26379/deployd/zero",
        "redis+cluster://:hunter2@127.0.0.1:7000/1",
        "redis+cluster://:hunter2@127.0.0.1:7000?timeout=3",
    ],
)
def test_an_unsupported_redis_url_is_one_line_not_a_traceback(capsys, url):
    # `?cluster=true` used to end in a TypeError traceback at the first command (the cluster
    # form is redis+cluster://); the password is never repeated.
    assert main(["store", "status", "--redis-url", url]) != 0
    err = capsys.readouterr().err
    assert err.startswith("deployd: error: not a usable Redis URL: ")
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert "hunter2" not in err


def test_a_sentinel_url_without_a_sentinel_is_one_line_naming_the_service(capsys):
    url = "redis+sentinel://:hunter2@127.0.0.1:1,127.0.0.1:2/deployd/0"
    assert main(["store", "status", "--redis-url", url]) != 0
    err = capsys.readouterr().err
    assert "no sentinel names a reachable primary for sentinel service 'deployd'" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert "hunter2" not in err
