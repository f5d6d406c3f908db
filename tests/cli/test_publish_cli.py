"""`deployd publish|history|rollback|promote` against a real server over HTTP (and its Redis),
`deployd publisher ...` and `deployd license revoke --server`, run through the CLI entry."""

from __future__ import annotations

import re

import pytest

from deployd.channels import channel_from_document
from deployd.cli.main import main
from deployd.cli.remote import SERVER_ENV, TOKEN_ENV
from deployd.publishers import Publisher, Scopes, load_tokens_file, token_hash
from deployd.publishing import seed_store
from deployd.store.redis import RedisStore
from tests.support.factories import CHANNEL_YAML, write_channels
from tests.support.publisher_auth import add_publisher

NEW_RELEASE = """\
  - version: 1.3.0
    chart: {version: 0.13.0}
    values: {app: {image: {tag: "0.53.0"}}}
    rollout: 10
"""


@pytest.fixture
def channels_dir(tmp_path):
    """Channel files as in git: stable gains 1.3.0, beta is what the server has."""
    directory = write_channels(tmp_path / "channels")
    (directory / "stable.yaml").write_text(CHANNEL_YAML.format(name="stable") + NEW_RELEASE)
    return directory


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- deployd publish --server


def test_publish_sends_only_what_changed(capsys, server, token, channels_dir):
    code, out, err = run(capsys, "publish", str(channels_dir), "--server", server.url)
    assert (code, err) == (0, "")
    assert out == "beta: unchanged (sequence 1)\nstable: sequence 2 (added 1.3.0)\n"
    record = server.store.get_channel("stable")
    assert (record.publisher, record.source) == ("ci", (channels_dir / "stable.yaml").read_text())
    assert server.store.sequences() == {"stable": 2, "beta": 1}
    code, out, _ = run(capsys, "publish", str(channels_dir), "--server", server.url)
    assert out == "beta: unchanged (sequence 1)\nstable: unchanged (sequence 2)\n"


def test_dry_run_prints_a_diff_per_channel_and_changes_nothing(capsys, server, token, channels_dir):
    stable = channels_dir / "stable.yaml"
    stable.write_text(
        stable.read_text()
        .replace("logLevel: info", "logLevel: debug")
        .replace("    required: true\n", "")
        .replace("  - version: 1.0.0\n", "  - version: 0.9.0\n")
    )
    code, out, err = run(capsys, "publish", str(channels_dir), "--dry-run", "--server", server.url)
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "beta: unchanged (sequence 1)",
        "stable: would publish over sequence 1 (added 0.9.0, 1.3.0; removed 1.0.0;"
        " changed 1.1.0 (required true -> false); channel values changed)",
        '  ~ values.global.logLevel: "info" -> "debug"',
        "  + release 0.9.0 (chart 0.10.0)",
        "  ~ release 1.1.0",
        "      ~ required: true -> false",
        "  + release 1.3.0 (chart 0.13.0, rollout 10)",
        "  - release 1.0.0",
        f"dry run: 1 channel would change; nothing was published to {server.url}",
    ]
    assert server.store.sequences() == {"stable": 1, "beta": 1}


def test_a_new_channel_is_created(capsys, server, token, tmp_path):
    directory = write_channels(tmp_path / "more", ("edge",))
    code, out, _ = run(capsys, "publish", str(directory), "--server", server.url, "--dry-run")
    assert out.splitlines()[0] == "edge: would publish as a new channel (created with 3 releases)"
    code, out, _ = run(capsys, "publish", str(directory), "--server", server.url)
    assert (code, out) == (0, "edge: sequence 1 (created with 3 releases)\n")


def test_a_bad_file_anywhere_lists_every_problem_and_publishes_nothing(
    capsys, server, token, channels_dir
):
    bad = channels_dir / "beta.yaml"
    bad.write_text(
        CHANNEL_YAML.format(name="beta").replace("1.1.0", "one") + "  - version: 1.0.0\n"
    )
    code, out, err = run(capsys, "publish", str(channels_dir), "--server", server.url)
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert len(lines) >= 2
    assert all(re.fullmatch(rf"{re.escape(str(bad))}:\d+: \S+: .+", line) for line in lines)
    assert any(":10: releases[1].version: 'one' is not a semantic version" in x for x in lines)
    assert any(":17: releases[3].version: duplicate version" in x for x in lines)
    assert server.store.sequences() == {"stable": 1, "beta": 1}


def test_a_chart_the_operator_would_drop_is_refused_with_its_line_and_nothing_published(
    capsys, server, token, channels_dir
):
    bad = channels_dir / "beta.yaml"
    bad.write_text(
        CHANNEL_YAML.format(name="beta").replace(
            "chart: {url: https://charts.example.com, name: server}",
            "chart: {url: 'https://charts.example.com:port/charts', name: server}",
        )
    )
    code, out, err = run(capsys, "publish", str(channels_dir), "--server", server.url)
    assert (code, out) == (1, "")
    assert err.startswith(f"{bad}:3: chart.url: 'https://charts.example.com:port/charts' is no")
    assert server.store.sequences() == {"stable": 1, "beta": 1}


def test_the_token_can_come_from_the_command_line(capsys, server, channels_dir):
    token = add_publisher(server.store, "alice")
    code, out, _ = run(
        capsys, "publish", str(channels_dir), "--server", server.url, "--token", token
    )
    assert code == 0
    assert server.store.get_channel("stable").publisher == "alice"


def test_the_server_can_come_from_the_environment(capsys, server, token, channels_dir, monkeypatch):
    monkeypatch.setenv(SERVER_ENV, server.url)
    code, out, _ = run(capsys, "publish", str(channels_dir))
    assert (code, out.splitlines()[-1]) == (0, "stable: sequence 2 (added 1.3.0)")


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, TOKEN_ENV),
        (
            "dpub_" + "x" * 43,
            "unknown or revoked publisher token (HTTP 401 publisher_unauthorized)",
        ),
        ("eyJhbGciOi.not.alicense", "not a publisher token"),
    ],
    ids=["missing", "unknown", "a license"],
)
def test_without_a_valid_token_nothing_is_published(
    capsys, server, channels_dir, monkeypatch, token, message
):
    if token is not None:
        monkeypatch.setenv(TOKEN_ENV, token)
    code, out, err = run(capsys, "publish", str(channels_dir), "--server", server.url)
    assert code == 1
    assert message in err
    if token is not None:
        assert token not in err
    assert server.store.sequences() == {"stable": 1, "beta": 1}


def test_an_unreachable_server_is_a_clear_error(capsys, token, channels_dir):
    code, _, err = run(capsys, "publish", str(channels_dir), "--server", "http://127.0.0.1:1")
    assert code == 1
    assert "cannot reach the server at http://127.0.0.1:1" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--server", "http://x", "--redis-url", "redis://x"], "not both"),
        (["--server", "ftp://x"], "http:// or https://"),
        ([], "--server URL"),
    ],
)
def test_target_mistakes(capsys, token, channels_dir, argv, message):
    code, _, err = run(capsys, "publish", str(channels_dir), *argv)
    assert code == 1
    assert message in err


# --- history, rollback, promote over HTTP


def test_history_and_rollback_round_trip(capsys, server, token, channels_dir):
    run(capsys, "publish", str(channels_dir), "--server", server.url)
    code, out, _ = run(capsys, "history", "stable", "--server", server.url)
    assert code == 0
    lines = out.splitlines()
    assert re.fullmatch(r"    2  \S+Z  ci    added 1\.3\.0", lines[0])
    assert re.fullmatch(r"    1  \S+Z  seed  created with 3 releases", lines[1])
    code, out, _ = run(capsys, "history", "stable", "1", "--server", server.url)
    assert out == CHANNEL_YAML.format(name="stable")

    code, out, _ = run(capsys, "rollback", "stable", "1", "--server", server.url)
    assert (code, out) == (0, "stable: sequence 3 (rollback to 1: removed 1.3.0)\n")
    history = server.store.history("stable")
    assert history[2].document == history[0].document
    code, out, _ = run(capsys, "rollback", "stable", "1", "--server", server.url)
    assert out == "stable: unchanged (sequence 3 is already the document of sequence 1)\n"
    code, _, err = run(capsys, "rollback", "stable", "9", "--server", server.url)
    assert code == 1 and "no sequence 9" in err and "unknown_sequence" in err


def test_promote_round_trip(capsys, server, token, tmp_path):
    beta = write_channels(tmp_path / "beta", ("beta",)) / "beta.yaml"
    beta.write_text(
        CHANNEL_YAML.format(name="beta").replace("logLevel: info", "logLevel: debug") + NEW_RELEASE
    )
    run(capsys, "publish", str(beta), "--server", server.url)
    argv = ["promote", "1.3.0", "--from", "beta", "--to", "stable", "--server", server.url]
    code, out, err = run(capsys, *argv, "--rollout", "25")
    assert code == 0
    assert out == "stable: sequence 2 (promoted 1.3.0 from beta: added 1.3.0)\n"
    assert "values.global.logLevel" in err and "--pin-values" in err
    promoted = channel_from_document(server.store.get_channel("stable").document).release("1.3.0")
    assert (promoted.rollout, promoted.values["global"]["logLevel"]) == (25, "info")
    code, out, _ = run(capsys, *argv, "--rollout", "25")
    assert out == "stable: unchanged (sequence 2 already has 1.3.0)\n"
    code, _, err = run(capsys, *argv)
    assert code == 1 and "release_exists" in err


def test_promote_with_pinned_values(capsys, server, token, tmp_path):
    beta = write_channels(tmp_path / "beta", ("beta",)) / "beta.yaml"
    beta.write_text(
        CHANNEL_YAML.format(name="beta").replace("logLevel: info", "logLevel: debug") + NEW_RELEASE
    )
    run(capsys, "publish", str(beta), "--server", server.url)
    argv = ["promote", "1.3.0", "--from", "beta", "--to", "stable", "--pin-values"]
    code, out, err = run(capsys, *argv, "--server", server.url)
    assert (code, err) == (0, "")
    promoted = channel_from_document(server.store.get_channel("stable").document).release("1.3.0")
    assert promoted.values["global"]["logLevel"] == "debug"


# --- the same against Redis directly


@pytest.fixture
def redis_url(real_redis, redis_server, tmp_path):
    seed_store(RedisStore(real_redis), write_channels(tmp_path / "seed"))
    return redis_server.url


@pytest.mark.redis_server
def test_local_mode_publishes_rolls_back_and_promotes_in_redis(
    capsys, redis_url, real_redis, channels_dir
):
    local = ["--redis-url", redis_url, "--publisher", "release-bot"]
    code, out, _ = run(capsys, "publish", str(channels_dir), "--dry-run", *local)
    where = RedisStore(real_redis).server
    assert (
        out.splitlines()[-1] == f"dry run: 1 channel would change; nothing was published to {where}"
    )
    code, out, _ = run(capsys, "publish", str(channels_dir), *local)
    assert out == "beta: unchanged (sequence 1)\nstable: sequence 2 (added 1.3.0)\n"
    code, out, _ = run(capsys, "promote", "1.3.0", "--from", "stable", "--to", "beta", *local)
    assert out == "beta: sequence 2 (promoted 1.3.0 from stable: added 1.3.0)\n"
    code, out, _ = run(capsys, "rollback", "beta", "1", *local)
    assert out == "beta: sequence 3 (rollback to 1: removed 1.3.0)\n"
    code, out, _ = run(capsys, "history", "beta", "--redis-url", redis_url)
    assert [line.split()[2] for line in out.splitlines()] == ["release-bot"] * 2 + ["seed"]
    store = RedisStore(real_redis)
    assert store.sequences() == {"stable": 2, "beta": 3}


# --- deployd publisher


@pytest.mark.redis_server
def test_publisher_create_list_revoke(capsys, real_redis, redis_server, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    code, out, err = run(capsys, "publisher", "create", "ci", "--action", "admin")
    token = out.strip()
    assert code == 0 and re.fullmatch(r"dpub_[A-Za-z0-9_-]{43}", token)
    assert token not in err and "only time" in err
    store = RedisStore(real_redis)
    assert store.publisher_for_hash(token_hash(token)).name == "ci"
    assert token.encode() not in b"".join(
        v
        for key in real_redis.keys("*")
        if real_redis.type(key) == b"hash"
        for v in real_redis.hgetall(key).values()
    )
    code, _, err = run(capsys, "publisher", "create", "ci", "--action", "admin")
    assert code == 1 and "exists" in err
    code, out, _ = run(capsys, "publisher", "list")
    assert re.fullmatch(r"ci  created \S+Z  active  admin\n", out)
    assert run(capsys, "publisher", "revoke", "ci")[:2] == (
        0,
        "revoked publisher 'ci'; its token no longer works on any server\n",
    )
    assert store.publisher_for_hash(token_hash(token)) is None
    code, out, _ = run(capsys, "publisher", "list")
    assert re.fullmatch(r"ci  created \S+Z  revoked \S+Z  admin\n", out)
    code, _, err = run(capsys, "publisher", "revoke", "ci")
    assert code == 1 and "no active publisher named 'ci'" in err


def test_publisher_create_into_a_tokens_file(capsys, tmp_path):
    tokens = tmp_path / "publishers.txt"
    admin = ["--action", "admin", "--tokens-file", str(tokens)]
    code, out, _ = run(capsys, "publisher", "create", "ci", *admin)
    token = out.strip()
    assert code == 0
    assert load_tokens_file(tokens) == {token_hash(token): Publisher("ci", Scopes.admin())}
    assert token not in tokens.read_text()
    code, _, err = run(capsys, "publisher", "create", "ci", *admin)
    assert code == 1 and "already names publisher 'ci'" in err
    run(capsys, "publisher", "create", "bob", *admin)
    assert sorted(p.name for p in load_tokens_file(tokens).values()) == ["bob", "ci"]


@pytest.mark.parametrize(
    "argv",
    [["create", "ci", "--action", "admin"], ["list"], ["revoke", "ci"]],
)
def test_publisher_commands_need_redis(capsys, argv):
    code, _, err = run(capsys, "publisher", *argv)
    assert code == 1 and "REDIS_URL" in err and "--tokens-file" in err


@pytest.mark.parametrize("name", ["", "_ci", "a b", "x" * 65, "ci:2"])
def test_publisher_names_are_checked(capsys, tmp_path, name):
    argv = ["--action", "admin", "--tokens-file", str(tmp_path / "t")]
    code, _, err = run(capsys, "publisher", "create", name, *argv)
    assert code == 1 and "publisher name" in err
    assert not (tmp_path / "t").exists()


@pytest.mark.redis_server
def test_publisher_create_takes_scopes_and_list_shows_them(
    capsys, real_redis, redis_server, monkeypatch
):
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    scoped = [
        "--action",
        "publish",
        "--action",
        "promote",
        "--channel",
        "stable",
        "--channel",
        "beta-*",
    ]
    code, out, err = run(capsys, "publisher", "create", "ci", *scoped)
    assert code == 0 and "'ci' (publish, promote on stable, beta-*)" in err
    ci_token = out.strip()
    code, out, _ = run(capsys, "publisher", "create", "support", "--action", "revoke")
    assert code == 0
    record = RedisStore(real_redis).publisher_for_hash(token_hash(ci_token))
    assert (record.actions, record.channels) == (("publish", "promote"), ("stable", "beta-*"))
    code, out, _ = run(capsys, "publisher", "list")
    assert re.fullmatch(
        r"ci       created \S+Z  active  publish, promote on stable, beta-\*\n"
        r"support  created \S+Z  active  revoke\n",
        out,
    )


def test_publisher_create_writes_scopes_into_a_tokens_file(capsys, tmp_path):
    tokens = tmp_path / "publishers.txt"
    argv = ["--action", "rollback", "--channel", "beta-*", "--tokens-file", str(tokens)]
    code, out, _ = run(capsys, "publisher", "create", "ci", *argv)
    token = out.strip()
    assert code == 0
    assert tokens.read_text() == f"ci:{token_hash(token)}:rollback:beta-*\n"
    scopes = Scopes.of(["rollback"], ["beta-*"])
    assert load_tokens_file(tokens) == {token_hash(token): Publisher("ci", scopes)}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--action", "publish"], "need the channels"),
        (["--action", "revoke", "--channel", "stable"], "revoke concerns no channel"),
        (["--action", "admin", "--channel", "beta"], "admin implies every action"),
        (["--action", "publish", "--channel", "Beta"], "neither a channel name nor a glob"),
    ],
)
def test_publisher_create_refuses_scopes_that_make_no_sense(capsys, tmp_path, argv, message):
    tokens = tmp_path / "publishers.txt"
    code, out, err = run(capsys, "publisher", "create", "ci", *argv, "--tokens-file", str(tokens))
    assert (code, out) == (1, "") and message in err
    assert not tokens.exists()


@pytest.mark.parametrize(
    ("argv", "message"), [([], "--action"), (["--action", "deploy"], "invalid choice: 'deploy'")]
)
def test_publisher_create_needs_an_action(capsys, tmp_path, argv, message):
    tokens = tmp_path / "publishers.txt"
    with pytest.raises(SystemExit) as raised:
        main(["publisher", "create", "ci", *argv, "--tokens-file", str(tokens)])
    assert raised.value.code == 2 and message in capsys.readouterr().err
    assert not tokens.exists()


def test_a_command_outside_the_token_scopes_is_refused(capsys, server, channels_dir, monkeypatch):
    token = add_publisher(server.store, "beta-ci", scopes=Scopes.of(["publish"], ["beta"]))
    monkeypatch.setenv(TOKEN_ENV, token)
    code, out, err = run(capsys, "publish", str(channels_dir), "--server", server.url)
    assert code == 1
    assert "publisher 'beta-ci' may not publish channel 'stable'" in err
    assert "HTTP 403 scope_not_allowed" in err
    assert server.store.sequences() == {"stable": 1, "beta": 1}


# --- deployd license revoke --server


def test_license_revoke_through_the_server(capsys, server, token):
    license = server.kit.issue(channel="stable")
    headers = {"Authorization": f"Bearer {license}"}
    client = server.app.test_client()
    assert client.get("/api/v1/operator/channel", headers=headers).status_code == 200
    import jwt

    jti = jwt.decode(license, options={"verify_signature": False})["jti"]
    code, out, _ = run(
        capsys, "license", "revoke", jti, "--reason", "leaked", "--server", server.url
    )
    assert (code, out) == (0, f"revoked license {jti}\n")
    assert server.store.is_revoked(jti)
    assert client.get("/api/v1/operator/channel", headers=headers).status_code == 403
    code, out, _ = run(capsys, "license", "revoke", jti, "--server", server.url)
    assert (code, out) == (0, f"license {jti} was already revoked\n")


def test_license_revoke_through_the_server_needs_a_publisher(capsys, server, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, server.kit.issue(channel="stable"))
    code, _, err = run(capsys, "license", "revoke", "lic-1", "--server", server.url)
    assert code == 1 and "publisher_unauthorized" in err
    assert not server.store.is_revoked("lic-1")
