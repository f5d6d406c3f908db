"""Publisher tokens: their shape, what is stored of them, the tokens file, the development token."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

from deployd.api.auth import bearer_token
from deployd.errors import BadRequestError, ConfigError, PublisherAuthError
from deployd.publishers import (
    DEV_PUBLISHER,
    DEV_TOKEN_FILE,
    Publisher,
    PublisherAuthenticator,
    ScopeError,
    Scopes,
    check_publisher_name,
    dev_token,
    is_publisher_token,
    load_tokens_file,
    new_token,
    require_scope,
    static_publishers,
    token_hash,
    tokens_file_line,
)
from deployd.store.memory import MemoryStore

ADMIN = Scopes.admin()


def test_tokens_are_random_and_shaped_like_dpub():
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(re.fullmatch(r"dpub_[A-Za-z0-9_-]{43}", t) for t in tokens)
    assert all(is_publisher_token(t) for t in tokens)


def test_only_the_sha256_is_kept():
    token = new_token()
    assert token_hash(token) == hashlib.sha256(token.encode()).hexdigest()
    assert tokens_file_line("ci", token, ADMIN) == f"ci:{token_hash(token)}:admin\n"


@pytest.mark.parametrize(
    "text",
    ["", "dpub_", "dpub_" + "a" * 42, "dpub_" + "a" * 44, "dpub_" + "a" * 42 + "=", "eyJ.a.b"],
)
def test_other_strings_are_not_publisher_tokens(text):
    assert not is_publisher_token(text)


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("Bearer abc", "abc"),
        ("bearer   abc  ", "abc"),
        ("Bearer", None),
        ("Basic abc", None),
        ("abc", None),
    ],
)
def test_bearer_token(header, token):
    assert bearer_token(header) == token


@pytest.mark.parametrize("name", ["ci", "alice@example.com", "release-bot.2", "A" * 64])
def test_good_publisher_names(name):
    assert check_publisher_name(name) == name


@pytest.mark.parametrize("name", ["", "-ci", "a b", "a:b", "A" * 65, "ci\n", "ü"])
def test_bad_publisher_names(name):
    with pytest.raises(BadRequestError):
        check_publisher_name(name)


# --- authenticating


@pytest.fixture
def store():
    return MemoryStore()


def test_store_publishers_and_static_ones_are_accepted(store):
    stored, static = new_token(), new_token()
    store.add_publisher("alice", token_hash(stored))
    check = PublisherAuthenticator(store, {token_hash(static): Publisher("ci", ADMIN)})
    assert check.authenticate(stored) == Publisher("alice", ADMIN)
    assert check.authenticate(static) == Publisher("ci", ADMIN)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "required"),
        ("", "required"),
        ("eyJhbGciOiJFZERTQSJ9.e30.sig", "not a publisher token"),
        (new_token(), "unknown or revoked"),
    ],
    ids=["none", "empty", "a license", "unknown"],
)
def test_anything_else_is_refused(store, token, message):
    with pytest.raises(PublisherAuthError, match=message) as raised:
        PublisherAuthenticator(store).authenticate(token)
    assert (raised.value.status, raised.value.code) == (401, "publisher_unauthorized")
    if token:
        assert token not in raised.value.message


def test_a_revoked_store_publisher_is_refused_at_once(store):
    token = new_token()
    store.add_publisher("alice", token_hash(token))
    check = PublisherAuthenticator(store)
    assert check.authenticate(token).name == "alice"
    store.revoke_publisher("alice")
    with pytest.raises(PublisherAuthError):
        check.authenticate(token)


# --- the tokens file


def write(path, text, mode=0o644):
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_tokens_file_lines(tmp_path):
    a, b = new_token(), new_token()
    path = write(
        tmp_path / "tokens",
        "# CI and people\n\n"
        + tokens_file_line("ci", a, ADMIN)
        + "  "
        + tokens_file_line("bob", b, ADMIN),
    )
    assert load_tokens_file(path) == {
        token_hash(a): Publisher("ci", ADMIN),
        token_hash(b): Publisher("bob", ADMIN),
    }


@pytest.mark.parametrize(
    "line",
    ["ci", "ci:", "ci:" + "A" * 64, "ci:" + "a" * 63, ":" + "a" * 64, "c i:" + "a" * 64],
)
def test_a_bad_tokens_file_line_is_a_config_error_naming_it(tmp_path, line):
    path = write(tmp_path / "tokens", "# fine\n" + line + "\n")
    with pytest.raises(ConfigError, match="line 2"):
        load_tokens_file(path)


def test_a_tokens_file_others_may_write_is_refused(tmp_path):
    path = write(tmp_path / "tokens", "", mode=0o666)
    with pytest.raises(ConfigError, match="writable"):
        load_tokens_file(path)


def test_a_missing_tokens_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_tokens_file(tmp_path / "nope")


# --- the development token


def test_the_development_token_is_made_once_mode_0600(tmp_path):
    state = tmp_path / "state"
    token = dev_token(state)
    path = state / DEV_TOKEN_FILE
    assert is_publisher_token(token)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert dev_token(state) == token


def test_processes_starting_together_share_one_development_token(tmp_path):
    with ThreadPoolExecutor(8) as pool:
        tokens = set(pool.map(lambda _: dev_token(tmp_path), range(8)))
    assert len(tokens) == 1


def test_a_damaged_development_token_file_is_a_config_error(tmp_path):
    (tmp_path / DEV_TOKEN_FILE).write_text("not a token\n")
    with pytest.raises(ConfigError, match="delete it"):
        dev_token(tmp_path)


def test_only_the_embedded_server_accepts_the_development_token(tmp_path):
    embedded = static_publishers(tokens_file=None, state_dir=str(tmp_path), embedded=True)
    assert embedded == {token_hash(dev_token(tmp_path)): Publisher(DEV_PUBLISHER, ADMIN)}
    on_redis = static_publishers(tokens_file=None, state_dir=str(tmp_path), embedded=False)
    assert on_redis == {}


# --- scopes


@pytest.mark.parametrize(
    ("glob", "channel", "matches"),
    [
        ("stable", "stable", True),
        ("stable", "stable-2", False),
        ("stable", "beta", False),
        ("*", "stable", True),
        ("*", "beta-eu", True),
        ("beta-*", "beta-eu", True),
        ("beta-*", "beta-", True),
        ("beta-*", "beta", False),
        ("beta*", "beta", True),
        ("*-eu", "stable-eu", True),
        ("*-eu", "stable-us", False),
        ("?table", "stable", True),
        ("?table", "sstable", False),
        ("STABLE", "stable", None),  # not a glob of a channel name: refused when made
    ],
)
def test_channel_globs(glob, channel, matches):
    if matches is None:
        with pytest.raises(BadRequestError, match="neither a channel name nor a glob"):
            Scopes.of(["publish"], [glob])
        return
    assert Scopes.of(["publish"], [glob]).allows("publish", channel) is matches


def test_any_of_several_globs_admits_a_channel():
    scopes = Scopes.of(["publish", "rollback"], ["stable", "beta-*"])
    assert [c for c in ("stable", "beta-eu", "beta", "edge") if scopes.allows("publish", c)] == [
        "stable",
        "beta-eu",
    ]
    assert not scopes.allows("promote", "stable")
    assert not scopes.allows("revoke")
    assert not scopes.allows("publish")  # a channel action names its channel


def test_admin_implies_every_action_on_every_channel():
    for admin in (Scopes.admin(), Scopes.of(["admin"], []), Scopes.of(["admin"], ["*"])):
        assert admin == Scopes.admin()
        assert all(admin.allows(a, "any-channel") for a in ("publish", "promote", "rollback"))
        assert admin.allows("revoke") and admin.allows("admin")
        assert admin.describe() == "admin"


def test_revoke_needs_no_channel():
    assert Scopes.of(["revoke"], []).allows("revoke")
    assert not Scopes.of(["publish"], ["*"]).allows("revoke")


@pytest.mark.parametrize(
    ("actions", "channels", "message"),
    [
        ([], ["stable"], "no action given"),
        (["deploy"], ["stable"], "unknown action 'deploy'"),
        (["publish"], [], "need the channels"),
        (["revoke"], ["stable"], "revoke concerns no channel"),
        (["admin"], ["stable"], "admin implies every action"),
        (["admin", "publish"], ["*"], "admin implies every action"),
        (["publish"], ["stable/../beta"], "neither a channel name nor a glob"),
        (["publish"], ["[a-z]*"], "neither a channel name nor a glob"),
        (["publish"], [""], "neither a channel name nor a glob"),
    ],
)
def test_scopes_that_make_no_sense_are_refused(actions, channels, message):
    with pytest.raises(BadRequestError, match=re.escape(message)):
        Scopes.of(actions, channels)


def test_scopes_describe_themselves_in_a_fixed_order():
    scopes = Scopes.of(["rollback", "revoke", "publish"], ["stable", "beta-*", "stable"])
    assert scopes.sorted_actions == ("publish", "rollback", "revoke")
    assert scopes.channels == ("stable", "beta-*")
    assert scopes.describe() == "publish, rollback, revoke on stable, beta-*"
    assert Scopes.of(["revoke"], []).describe() == "revoke"


@pytest.mark.parametrize(
    ("action", "channel", "message"),
    [
        ("promote", "stable", "publisher 'ci' may not promote channel 'stable'"),
        ("revoke", None, "publisher 'ci' may not revoke licenses"),
    ],
)
def test_a_refusal_names_the_action_and_the_channel(action, channel, message):
    publisher = Publisher("ci", Scopes.of(["publish"], ["beta-*"]))
    with pytest.raises(ScopeError) as raised:
        require_scope(publisher, action, channel)
    error = raised.value
    assert (error.status, error.code) == (403, "scope_not_allowed")
    assert error.message == f"{message}: its scopes are publish on beta-*"
    assert error.to_dict() == {
        "error": {
            "code": "scope_not_allowed",
            "message": error.message,
            "scope": {"action": action, "channel": channel},
        }
    }
    require_scope(publisher, "publish", "beta-eu")  # within scope: no error


def test_store_publishers_carry_their_scopes(store):
    token = new_token()
    store.add_publisher("ci", token_hash(token), actions=("publish",), channels=("beta-*",))
    assert PublisherAuthenticator(store).authenticate(token) == Publisher(
        "ci", Scopes.of(["publish"], ["beta-*"])
    )


# --- scopes in the tokens file


@pytest.mark.parametrize(
    ("scopes", "suffix"),
    [
        (Scopes.admin(), ":admin"),
        (Scopes.of(["publish"], ["stable"]), ":publish:stable"),
        (Scopes.of(["promote", "publish"], ["stable", "beta-*"]), ":publish,promote:stable,beta-*"),
        (Scopes.of(["revoke"], []), ":revoke"),
        (Scopes.of(["revoke", "rollback"], ["*"]), ":rollback,revoke:*"),
    ],
)
def test_tokens_file_lines_with_scopes_read_back_the_same(tmp_path, scopes, suffix):
    token = new_token()
    line = tokens_file_line("ci", token, scopes)
    assert line == f"ci:{token_hash(token)}{suffix}\n"
    path = write(tmp_path / "tokens", line)
    assert load_tokens_file(path) == {token_hash(token): Publisher("ci", scopes)}


def test_tokens_file_lines_from_before_scopes_are_admin(tmp_path):
    old, new = new_token(), new_token()
    path = write(
        tmp_path / "tokens",
        f"old:{token_hash(old)}\nnew:{token_hash(new)}: publish , promote : stable, beta-* \n",
    )
    assert load_tokens_file(path) == {
        token_hash(old): Publisher("old", Scopes.admin()),
        token_hash(new): Publisher("new", Scopes.of(["publish", "promote"], ["stable", "beta-*"])),
    }


@pytest.mark.parametrize(
    ("scopes", "message"),
    [
        ("", "no action given"),
        (":stable", "no action given"),
        ("deploy:stable", "unknown action 'deploy'"),
        ("publish", "need the channels"),
        ("publish:", "need the channels"),
        ("revoke:stable", "revoke concerns no channel"),
        ("admin:beta", "admin implies every action"),
        ("publish:Stable", "neither a channel name nor a glob"),
        ("publish:stable:beta", "neither a channel name nor a glob"),
    ],
)
def test_a_bad_scope_in_the_tokens_file_is_a_config_error_naming_the_line(
    tmp_path, scopes, message
):
    path = write(tmp_path / "tokens", f"# fine\nci:{'a' * 64}:{scopes}\n")
    with pytest.raises(ConfigError, match=f"line 2: .*{re.escape(message)}"):
        load_tokens_file(path)
