"""Publisher scopes over HTTP: each action in and out of a token's scopes, on every store.

A refusal is 403 `scope_not_allowed` naming the action and the channel, and changes nothing;
an allowed change records the publisher's name. Reading needs any valid publisher token.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import fakeredis
import jsonschema
import pytest
import yaml

from deployd.channels import parse_channel_text
from deployd.publishers import Scopes, new_token, token_hash, tokens_file_line
from deployd.publishing import publish_channel, seed_store
from deployd.server.app import create_app
from deployd.store import Store
from deployd.store.redis import RedisStore
from tests.support.backends import open_backend
from tests.support.factories import CHANNEL_YAML
from tests.support.http import error_of
from tests.support.publisher_auth import add_publisher, bearer, yaml_body

RELEASE_1_3 = """\
  - version: 1.3.0
    chart: {version: 0.13.0}
    values: {app: {image: {tag: "0.53.0"}}}
"""
# stable is at sequence 2 (a new description), beta has 1.3.0: each action below is a change.
STABLE_V2 = CHANNEL_YAML.format(name="stable").replace("Test channel stable.", "Second version.")
BETA_V2 = CHANNEL_YAML.format(name="beta") + RELEASE_1_3
STABLE_NEXT = CHANNEL_YAML.format(name="stable") + RELEASE_1_3
JTI = "lic-1"

Request = Callable[[Any, str], Any]
REQUESTS: dict[str, Request] = {
    "publish": lambda http, token: http.put(
        "/api/v1/channels/stable", **yaml_body(STABLE_NEXT, token)
    ),
    "promote": lambda http, token: http.post(
        "/api/v1/channels/stable/promote",
        json={"from": "beta", "version": "1.3.0"},
        headers=bearer(token),
    ),
    "rollback": lambda http, token: http.post(
        "/api/v1/channels/stable/rollback", json={"sequence": 1}, headers=bearer(token)
    ),
    "revoke": lambda http, token: http.post(
        f"/api/v1/licenses/{JTI}/revoke", json={"reason": "leaked"}, headers=bearer(token)
    ),
}
CHANNEL_OF = {"publish": "stable", "promote": "stable", "rollback": "stable", "revoke": None}

# (actions, channels) -> the actions of REQUESTS it allows (all on channel stable).
SCOPE_TABLE: list[tuple[str, list[str], list[str], set[str]]] = [
    ("admin", ["admin"], [], {"publish", "promote", "rollback", "revoke"}),
    ("publish stable", ["publish"], ["stable"], {"publish"}),
    ("publish st*", ["publish"], ["st*"], {"publish"}),
    ("publish beta and beta-*", ["publish"], ["beta", "beta-*"], set()),
    ("publish ?table", ["publish"], ["?table"], {"publish"}),
    (
        "channel actions on *",
        ["publish", "promote", "rollback"],
        ["*"],
        set(CHANNEL_OF) - {"revoke"},
    ),
    ("promote from beta is no promote to stable", ["promote"], ["beta"], set()),
    ("promote stable", ["promote"], ["stable"], {"promote"}),
    ("rollback stable", ["rollback"], ["stable"], {"rollback"}),
    ("revoke", ["revoke"], [], {"revoke"}),
    ("revoke and publish beta", ["revoke", "publish"], ["beta"], {"revoke"}),
]
CASES = [
    pytest.param(actions, channels, action, action in allowed, id=f"{name}: {action}")
    for name, actions, channels, allowed in SCOPE_TABLE
    for action in REQUESTS
]


@pytest.fixture(params=["memory", "fakeredis"])
def store(request, settings):
    """The seeded store of the API tests, in memory and on fakeredis, with stable at sequence 2
    and release 1.3.0 in beta."""
    backend = open_backend(request)
    store = next(backend)
    seed_store(store, settings.channels_dir)
    for name, text in (("stable", STABLE_V2), ("beta", BETA_V2)):
        channel = parse_channel_text(text, filename=f"{name}.yaml", expected_name=name)
        publish_channel(store, channel, source=text, publisher="seed")
    yield store
    next(backend, None)


def state_of(store: Store) -> tuple:
    """Everything a publisher action could change."""
    return (
        store.sequences(),
        [r.to_dict() for name in ("stable", "beta") for r in store.history(name)],
        store.generation(),
        store.is_revoked(JTI),
    )


def revoked_by(store: RedisStore) -> str:
    """Who revoked JTI, as the revocation entry in Redis records it."""
    return json.loads(store.client.hget(store._key("revoked"), JTI))["by"]


@pytest.mark.parametrize(("actions", "channels", "action", "allowed"), CASES)
def test_each_action_in_and_out_of_scope(client, store, actions, channels, action, allowed):
    token = add_publisher(store, "scoped", scopes=Scopes.of(actions, channels))
    before = state_of(store)
    response = REQUESTS[action](client, token)
    if not allowed:
        assert error_of(response) == (403, "scope_not_allowed")
        error = response.get_json()["error"]
        assert error["scope"] == {"action": action, "channel": CHANNEL_OF[action]}
        assert action in error["message"] and "'scoped'" in error["message"]
        if CHANNEL_OF[action]:
            assert "'stable'" in error["message"]
        assert state_of(store) == before
        return
    assert response.status_code == 200, response.get_json()
    if action == "revoke":
        assert store.is_revoked(JTI)
        if isinstance(store, RedisStore):
            assert revoked_by(store) == "scoped"
    else:
        record = store.get_channel("stable")
        assert (record.sequence, record.publisher) == (3, "scoped")
        assert response.get_json()["publisher"] == "scoped"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/channels",
        "/api/v1/channels/stable",
        "/api/v1/channels/stable/document",
        "/api/v1/channels/stable/history",
        "/api/v1/channels/stable/history/1",
    ],
)
def test_reading_needs_any_valid_publisher_token(client, store, path):
    token = add_publisher(store, "support", scopes=Scopes.of(["revoke"], []))
    assert client.get(path, headers=bearer(token)).status_code == 200


@pytest.mark.parametrize(
    ("action", "request_args"),
    [
        ("publish", {"data": b"releases: [", "content_type": "application/yaml"}),
        ("promote", {"json": ["not", "an", "object"]}),
        ("rollback", {"json": {"sequence": "one"}}),
    ],
)
def test_the_scope_is_checked_before_the_body_is_read(client, store, action, request_args):
    token = add_publisher(store, "beta-ci", scopes=Scopes.of([action], ["beta"]))
    method, path = ("put", "") if action == "publish" else ("post", f"/{action}")
    call = getattr(client, method)
    response = call(f"/api/v1/channels/stable{path}", headers=bearer(token), **request_args)
    assert error_of(response) == (403, "scope_not_allowed")


def test_history_records_who_did_what(client, store):
    tokens = {
        action: add_publisher(store, f"{action}-bot", scopes=Scopes.of([action], ["stable"]))
        for action in ("publish", "promote", "rollback")
    }
    for action in ("publish", "rollback", "promote"):
        assert REQUESTS[action](client, tokens[action]).status_code == 200
    entries = client.get("/api/v1/channels/stable/history", headers=bearer(tokens["publish"]))
    who = [(e["sequence"], e["publisher"]) for e in entries.get_json()["history"]]
    assert who[:3] == [(5, "promote-bot"), (4, "rollback-bot"), (3, "publish-bot")]


OLD_RECORD = {"name": "legacy", "created_at": "2026-01-01T00:00:00Z", "revoked_at": None}


@pytest.mark.parametrize("action", REQUESTS)
def test_a_publisher_record_from_before_scopes_is_admin(settings, action):
    redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    store = RedisStore(redis)
    store.initialize()
    seed_store(store, settings.channels_dir)
    for name, text in (("stable", STABLE_V2), ("beta", BETA_V2)):
        channel = parse_channel_text(text, filename=f"{name}.yaml", expected_name=name)
        publish_channel(store, channel, source=text, publisher="seed")
    token = new_token()
    # What `deployd publisher create` wrote before scopes existed: no actions, no channels.
    redis.hset(
        "deployd:publishers", "legacy", json.dumps({**OLD_RECORD, "token_hash": token_hash(token)})
    )
    redis.hset("deployd:publisher-tokens", token_hash(token), "legacy")
    http = create_app(settings, store=store).test_client()
    response = REQUESTS[action](http, token)
    assert response.status_code == 200, response.get_json()
    redis.close()


def test_tokens_file_lines_carry_scopes_and_old_lines_are_admin(tmp_path, settings, store):
    beta_only, old = new_token(), new_token()
    tokens = tmp_path / "publishers"
    tokens.write_text(
        tokens_file_line("beta-ci", beta_only, Scopes.of(["publish"], ["beta*"]))
        + f"old-ci:{token_hash(old)}\n"
    )
    os.chmod(tokens, 0o644)
    app = create_app(replace(settings, publisher_tokens_file=str(tokens)), store=store)
    http = app.test_client()
    before = state_of(store)
    assert error_of(REQUESTS["publish"](http, beta_only)) == (403, "scope_not_allowed")
    assert error_of(REQUESTS["revoke"](http, beta_only)) == (403, "scope_not_allowed")
    assert state_of(store) == before
    beta_text = BETA_V2.replace("Test channel beta.", "Published by CI.")
    beta = http.put("/api/v1/channels/beta", **yaml_body(beta_text, beta_only))
    assert (beta.status_code, beta.get_json()["publisher"]) == (200, "beta-ci")
    for action in REQUESTS:
        assert REQUESTS[action](http, old).status_code == 200, action


def test_the_development_token_is_admin(tmp_path, settings, store):
    app = create_app(settings, store=store)
    token = (tmp_path / "state" / "dev-publisher.token").read_text().strip()
    http = app.test_client()
    for action in REQUESTS:
        assert REQUESTS[action](http, token).status_code == 200, action


OPENAPI = yaml.safe_load((Path(__file__).resolve().parents[2] / "openapi.yaml").read_text())
OPERATION_OF = {
    "publish": ("/api/v1/channels/{name}", "put"),
    "promote": ("/api/v1/channels/{name}/promote", "post"),
    "rollback": ("/api/v1/channels/{name}/rollback", "post"),
    "revoke": ("/api/v1/licenses/{jti}/revoke", "post"),
}


@pytest.mark.parametrize("action", REQUESTS)
def test_the_refusal_is_the_one_openapi_yaml_documents(client, store, action):
    token = add_publisher(store, "nobody-much", scopes=Scopes.of(["publish"], ["edge"]))
    response = REQUESTS[action](client, token)
    path, method = OPERATION_OF[action]
    documented = OPENAPI["paths"][path][method]["responses"]["403"]
    assert documented == {"$ref": "#/components/responses/ScopeNotAllowed"}
    assert (
        "scope_not_allowed" in OPENAPI["components"]["responses"]["ScopeNotAllowed"]["description"]
    )
    error_schema = {**OPENAPI, "$ref": "#/components/schemas/Error"}
    jsonschema.validate(response.get_json(), error_schema, cls=jsonschema.Draft202012Validator)
    assert response.status_code == 403
