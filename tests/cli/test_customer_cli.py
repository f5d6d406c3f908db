"""`deployd customer show|set|clear` over HTTP against a live server and directly in Redis, and
`deployd publisher create --action customers`."""

from __future__ import annotations

import re

import pytest
import requests

from deployd.cli.main import main
from deployd.cli.remote import TOKEN_ENV
from deployd.publishers import Scopes
from deployd.store.redis import RedisStore
from tests.support.http import CHANNEL_URL


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def released(server, license: str) -> str:
    response = requests.get(server.url + CHANNEL_URL, auth=("license", license), timeout=10)
    return response.json()["metadata"]["release"]


@pytest.fixture
def customers_token(server, monkeypatch):
    token = server.world.publisher_token("support", scopes=Scopes.of(["customers"], []))
    monkeypatch.setenv(TOKEN_ENV, token)
    return token


def test_set_show_and_clear_over_http(capsys, server, customers_token):
    license = server.issue()
    where = ["--server", server.url]
    code, out, err = run(capsys, "customer", "show", "acme", *where)
    assert (code, out, err) == (0, "customer acme: no record; the license applies as it is\n", "")
    code, out, err = run(
        capsys, "customer", "set", "acme", "--pin", "1.0.0", "--notes", "change freeze", *where
    )
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert re.fullmatch(r"customer acme \(record version \d+\)", lines[0])
    assert "  pinned release  1.0.0" in lines and "  notes           change freeze" in lines
    assert re.fullmatch(r"  updated         \S+Z by support", lines[6])
    assert lines[7].startswith("  - pinnedRelease: serves release 1.0.0")
    assert released(server, license) == "1.0.0"  # this server changed it: at once
    code, out, _ = run(capsys, "customer", "clear", "acme", "--field", "pin", *where)
    assert "  pinned release  none" in out.splitlines()
    # Released from its pin, the cluster (last served 1.0.0) steps through required 1.1.0.
    assert released(server, license) == "1.1.0"
    assert released(server, license) == "1.2.0"
    code, out, _ = run(capsys, "customer", "clear", "acme", *where)
    assert out == "customer acme: no record; the license applies as it is\n"
    assert server.world.store.customer("acme") is None


def test_set_needs_a_field_and_checks_it(capsys, server, customers_token):
    code, _, err = run(capsys, "customer", "set", "acme", "--server", server.url)
    assert (code, err) == (
        1,
        "deployd: error: give at least one field to set (deployd customer set --help)\n",
    )
    code, _, err = run(capsys, "customer", "set", "acme", "--pin", "latest", "--server", server.url)
    assert code == 1
    assert err.startswith("deployd: error: 'pinnedRelease' must be a release version (semver)")


def test_a_token_without_the_customers_scope_is_refused(capsys, server, monkeypatch):
    token = server.world.publisher_token("ci", scopes=Scopes.of(["publish"], ["*"]))
    monkeypatch.setenv(TOKEN_ENV, token)
    code, _, err = run(capsys, "customer", "set", "acme", "--hold", "--server", server.url)
    assert code == 1 and "may not change customer records" in err
    assert "scope_not_allowed" in err


@pytest.mark.redis_server
def test_set_show_and_clear_in_redis(capsys, real_redis, redis_server):
    local = ["--redis-url", redis_server.url, "--publisher", "support-bot"]
    code, out, _ = run(
        capsys,
        "customer",
        "set",
        "acme",
        "--channel",
        "beta",
        "--extra-channel",
        "edge",
        "--extra-channel",
        "canary",
        "--hold",
        *local,
    )
    assert code == 0
    record = RedisStore(real_redis).customer("acme")
    assert (record.channel, record.extra_channels, record.hold) == (
        "beta",
        ("edge", "canary"),
        True,
    )
    assert record.updated_by == "support-bot"
    code, out, _ = run(capsys, "customer", "set", "acme", "--no-hold", *local)
    assert "  hold            no" in out.splitlines()
    code, out, _ = run(capsys, "customer", "show", "acme", "--redis-url", redis_server.url)
    assert "  extra channels  edge, canary" in out.splitlines()
    assert "  channel         beta" in out.splitlines()
    code, out, _ = run(capsys, "customer", "clear", "acme", *local)
    assert RedisStore(real_redis).customer("acme") is None


@pytest.mark.redis_server
def test_publisher_create_accepts_the_customers_action(capsys, real_redis, redis_server):
    code, out, _ = run(
        capsys,
        "publisher",
        "create",
        "support",
        "--action",
        "customers",
        "--redis-url",
        redis_server.url,
    )
    assert code == 0
    code, out, _ = run(capsys, "publisher", "list", "--redis-url", redis_server.url)
    assert re.search(r"support +created \S+ +active +customers", out)
