"""PUT /api/v1/channels/<name>: publishers publish a whole channel document, validated first."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from deployd.channels import channel_digest
from deployd.errors import StoreUnavailableError
from deployd.publishers import DEV_TOKEN_FILE, Scopes, new_token, tokens_file_line
from deployd.server.app import create_app
from tests.support.factories import CHANNEL_YAML
from tests.support.http import basic, error_of
from tests.support.publisher_auth import add_publisher, bearer, yaml_body

STABLE = CHANNEL_YAML.format(name="stable")
NEXT = (
    STABLE
    + """\
  - version: 1.3.0
    chart: {version: 0.13.0}
    values: {app: {image: {tag: "0.53.0"}}}
    rollout: 10
"""
)


@pytest.fixture
def publisher_token(store) -> str:
    return add_publisher(store, "alice")


def spec_release(client, license, path="/api/v1/operator/channel") -> str:
    return client.get(path, headers=basic(license)).get_json()["metadata"]["release"]


def test_a_publish_is_one_new_sequence_served_at_once(client, store, license, publisher_token):
    response = client.put("/api/v1/channels/stable", **yaml_body(NEXT, publisher_token))
    assert response.status_code == 200
    body = response.get_json()
    assert body == {
        "channel": "stable",
        "sequence": 2,
        "changed": True,
        "digest": store.get_channel("stable").digest,
        "summary": "added 1.3.0",
        "publishedAt": body["publishedAt"],
        "publisher": "alice",
    }
    assert response.headers["ETag"] == '"2"'
    record = store.get_channel("stable")
    assert (record.sequence, record.source, record.publisher) == (2, NEXT, "alice")
    assert record.digest == channel_digest(record.document)
    detail = client.get("/api/v1/channels/stable", headers=basic(license)).get_json()
    assert (detail["sequence"], detail["newest"]) == (2, "1.3.0")
    # 1.3.0 is at 10% rollout: the pinned endpoint serves it to everyone who asks for it.
    pinned = "/api/v1/operator/channel/release/1.3.0"
    assert spec_release(client, license, pinned) == "1.3.0"


def test_the_same_document_again_changes_nothing(client, store, publisher_token):
    response = client.put("/api/v1/channels/stable", **yaml_body(STABLE, publisher_token))
    assert response.status_code == 200
    assert response.get_json()["changed"] is False
    assert response.get_json()["sequence"] == 1
    assert len(store.history("stable")) == 1


def test_a_new_channel_is_created(client, store, publisher_token):
    text = CHANNEL_YAML.format(name="edge")
    response = client.put("/api/v1/channels/edge", **yaml_body(text, publisher_token))
    assert response.status_code == 201
    assert (response.get_json()["sequence"], response.get_json()["summary"]) == (
        1,
        "created with 3 releases",
    )
    assert store.sequences()["edge"] == 1


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8"])
def test_json_bodies_are_accepted(client, store, publisher_token, content_type):
    document = yaml.safe_load(NEXT)
    document["releases"][0]["releasedAt"] = "2026-09-01T12:00:00Z"
    text = json.dumps(document, indent=2)
    response = client.put(
        "/api/v1/channels/stable",
        data=text,
        content_type=content_type,
        headers=bearer(publisher_token),
    )
    assert response.status_code == 200, response.get_json()
    assert store.get_channel("stable").source == text
    assert store.get_channel("stable").document["releases"][-1]["version"] == "1.3.0"


def _replace(old: str, new: str) -> str:
    assert old in STABLE
    return STABLE.replace(old, new, 1)


INVALID = {
    "duplicate version": (
        "stable",
        _replace("version: 1.2.0", "version: 1.1.0"),
        [(14, "releases[2].version", "duplicate version")],
    ),
    "bad semver": (
        "stable",
        _replace("version: 1.2.0", "version: v1.2"),
        [(14, "releases[2].version", "not a semantic version")],
    ),
    "unknown key": (
        "stable",
        _replace("    required: true", "    requried: true"),
        [(13, "releases[1].requried", "did you mean 'required'")],
    ),
    "wrong type": (
        "stable",
        _replace("    required: true", "    rollout: ten"),
        [(13, "releases[1].rollout", "must be an integer")],
    ),
    "YAML syntax error": (
        "stable",
        _replace("    chart: {version: 0.11.0}", "    chart: {version: 0.11.0"),
        [(12, "<document>", "invalid YAML")],
    ),
    "name does not match the URL": ("beta", STABLE, [(1, "name", "does not match")]),
    "every problem at once": (
        "stable",
        _replace("    required: true", "    requried: true").replace(
            "version: 1.2.0", "version: x"
        ),
        [
            (13, "releases[1].requried", "unknown key"),
            (14, "releases[2].version", "not a semantic version"),
        ],
    ),
}


@pytest.mark.parametrize(("url_name", "text", "expected"), INVALID.values(), ids=INVALID.keys())
def test_an_invalid_document_is_refused_whole_with_every_line(
    client, store, publisher_token, url_name, text, expected
):
    before = (store.sequences(), store.generation())
    response = client.put(f"/api/v1/channels/{url_name}", **yaml_body(text, publisher_token))
    assert error_of(response) == (422, "invalid_channel")
    problems = response.get_json()["error"]["problems"]
    assert [(p["line"], p["field"]) for p in problems] == [(line, f) for line, f, _ in expected]
    for problem, (_, _, message) in zip(problems, expected, strict=True):
        assert message in problem["message"]
        assert problem["file"] == f"{url_name}.yaml"
    assert (store.sequences(), store.generation()) == before


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('{"name": "stable",\n "releases": [}', 2, "invalid JSON"),
        ('{"name": "stable", "releases": []}', None, "at least one release"),
        ("[" * 100_000 + "]" * 100_000, None, "JSON"),
    ],
    ids=["syntax", "invalid document", "nested too deep"],
)
def test_an_invalid_json_document_is_refused(client, store, publisher_token, text, line, message):
    response = client.put(
        "/api/v1/channels/stable",
        data=text,
        content_type="application/json",
        headers=bearer(publisher_token),
    )
    assert error_of(response) == (422, "invalid_channel")
    problem = response.get_json()["error"]["problems"][0]
    assert problem["line"] == line
    assert message in problem["message"]
    assert store.get_channel("stable").sequence == 1


@pytest.mark.parametrize(
    "url",
    [
        "oci://registry.example.com/charts/server:9.9.9",  # the releases' versions differ
        "https://charts.example.com/a%zz",
        "https://user@/charts",
        "https://charts.example.com:port/charts",
    ],
)
def test_a_chart_the_operator_would_drop_is_refused_with_its_line(
    client, store, publisher_token, url
):
    text = STABLE.replace("url: https://charts.example.com", f"url: '{url}'")
    response = client.put("/api/v1/channels/stable", **yaml_body(text, publisher_token))
    assert error_of(response) == (422, "invalid_channel")
    problems = response.get_json()["error"]["problems"]
    assert problems and all(p["line"] for p in problems)
    assert store.get_channel("stable").sequence == 1


BILLION_LAUGHS = "name: stable\na: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8)
)


def test_a_yaml_bomb_is_refused_quickly(client, store, publisher_token):
    response = client.put("/api/v1/channels/stable", **yaml_body(BILLION_LAUGHS, publisher_token))
    assert error_of(response) == (422, "invalid_channel")
    assert "nodes" in response.get_json()["error"]["message"]
    assert store.get_channel("stable").sequence == 1


def test_an_oversize_body_is_413(settings, store, publisher_token):
    client = create_app(replace(settings, max_body_bytes=2048), store=store).test_client()
    response = client.put(
        "/api/v1/channels/stable", **yaml_body(NEXT + "#" * 4096, publisher_token)
    )
    assert error_of(response) == (413, "payload_too_large")
    assert store.get_channel("stable").sequence == 1


def test_other_content_types_are_415(client, publisher_token):
    response = client.put(
        "/api/v1/channels/stable",
        data=NEXT,
        content_type="text/plain",
        headers=bearer(publisher_token),
    )
    assert error_of(response) == (415, "unsupported_media_type")


# --- optimistic concurrency


def test_if_match_publishes_only_over_that_sequence(client, store, publisher_token):
    ok = client.put(
        "/api/v1/channels/stable", **yaml_body(NEXT, publisher_token, **{"If-Match": '"1"'})
    )
    assert (ok.status_code, ok.get_json()["sequence"]) == (200, 2)
    stale = client.put(
        "/api/v1/channels/stable", **yaml_body(STABLE, publisher_token, **{"If-Match": '"1"'})
    )
    assert error_of(stale) == (412, "sequence_conflict")
    assert "at sequence 2" in stale.get_json()["error"]["message"]
    assert store.get_channel("stable").sequence == 2
    assert len(store.history("stable")) == 2


def test_if_none_match_star_only_creates(client, store, publisher_token):
    exists = client.put(
        "/api/v1/channels/stable", **yaml_body(NEXT, publisher_token, **{"If-None-Match": "*"})
    )
    assert error_of(exists) == (412, "sequence_conflict")
    edge = CHANNEL_YAML.format(name="edge")
    created = client.put(
        "/api/v1/channels/edge", **yaml_body(edge, publisher_token, **{"If-None-Match": "*"})
    )
    assert created.status_code == 201


@pytest.mark.parametrize(
    "header", [{"If-Match": "*"}, {"If-Match": '"one"'}, {"If-None-Match": '"1"'}]
)
def test_a_malformed_precondition_is_400(client, store, publisher_token, header):
    response = client.put("/api/v1/channels/stable", **yaml_body(NEXT, publisher_token, **header))
    assert error_of(response) == (400, "bad_request")
    assert store.get_channel("stable").sequence == 1


# --- who may publish


@pytest.fixture
def revoked_publisher_token(store) -> str:
    return add_publisher(store, "mallory", revoked=True)


CREDENTIALS = {
    "no credentials": lambda license, revoked: {},
    "a license as bearer token": lambda license, revoked: bearer(license),
    "a license as Basic auth": lambda license, revoked: basic(license),
    "a revoked publisher token": lambda license, revoked: bearer(revoked),
    "an unknown publisher token": lambda license, revoked: bearer(new_token()),
    "a token of the wrong shape": lambda license, revoked: bearer("dpub_short"),
    "an empty bearer": lambda license, revoked: {"Authorization": "Bearer "},
}


@pytest.mark.parametrize("credentials", CREDENTIALS.values(), ids=CREDENTIALS.keys())
def test_only_a_publisher_token_publishes(
    client, store, license, revoked_publisher_token, credentials
):
    headers = credentials(license, revoked_publisher_token)
    response = client.put(
        "/api/v1/channels/stable", data=NEXT, content_type="application/yaml", headers=headers
    )
    assert error_of(response) == (401, "publisher_unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert license not in response.get_data(as_text=True)
    assert store.get_channel("stable").sequence == 1


def test_a_token_stops_working_once_revoked(client, store, publisher_token):
    store.revoke_publisher("alice")
    response = client.put("/api/v1/channels/stable", **yaml_body(NEXT, publisher_token))
    assert error_of(response) == (401, "publisher_unauthorized")


def test_a_publisher_token_is_no_license(client, publisher_token):
    response = client.get("/api/v1/operator/channel", headers=bearer(publisher_token))
    assert error_of(response) == (401, "malformed")
    response = client.get("/api/v1/operator/channel", headers=basic(publisher_token))
    assert error_of(response) == (401, "malformed")


def test_a_publisher_reads_every_channel(client, publisher_token, revoked_publisher_token):
    listed = client.get("/api/v1/channels", headers=bearer(publisher_token)).get_json()
    assert [c["name"] for c in listed["channels"]] == ["beta", "stable"]
    detail = client.get("/api/v1/channels/beta", headers=bearer(publisher_token))
    assert detail.get_json()["name"] == "beta"
    refused = client.get("/api/v1/channels", headers=bearer(revoked_publisher_token))
    assert error_of(refused) == (401, "publisher_unauthorized")


def test_the_store_being_down_is_503(client, store, publisher_token, monkeypatch):
    def down(*args, **kwargs):
        raise StoreUnavailableError("publish: Redis at 127.0.0.1:6379/0 failed")

    monkeypatch.setattr(store, "publish", down)
    response = client.put("/api/v1/channels/stable", **yaml_body(NEXT, publisher_token))
    assert error_of(response) == (503, "store_unavailable")
    assert response.headers["Retry-After"]


# --- development token and tokens file


def test_the_embedded_server_makes_a_development_token(settings, client, store):
    path = Path(settings.state_dir) / DEV_TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = path.read_text().strip()
    response = client.put("/api/v1/channels/stable", **yaml_body(NEXT, token))
    assert (response.status_code, response.get_json()["publisher"]) == (200, "dev")
    # A second app on the same state directory accepts the same token.
    again = create_app(settings, store=store).test_client()
    assert again.get("/api/v1/channels", headers=bearer(token)).status_code == 200
    assert path.read_text().strip() == token


def test_a_server_on_redis_accepts_no_development_token(tmp_path, settings, store):
    from deployd.keyfiles import write_key_pair
    from deployd.licensing.keyring import generate_private_key

    dev = tmp_path / "dev-state"
    dev.mkdir()
    token = new_token()
    (dev / DEV_TOKEN_FILE).write_text(token + "\n")
    signing_key, _ = write_key_pair(generate_private_key("EdDSA"), tmp_path / "signing", "spec")
    on_redis = replace(
        settings,
        redis_url="redis://127.0.0.1:1/0",
        signing_key=str(signing_key),
        state_dir=str(dev),
    )
    client = create_app(on_redis, store=store).test_client()
    response = client.put("/api/v1/channels/stable", **yaml_body(NEXT, token))
    assert error_of(response) == (401, "publisher_unauthorized")


def test_a_tokens_file_names_static_publishers(tmp_path, settings, store):
    token = new_token()
    tokens = tmp_path / "publishers.txt"
    tokens.write_text("# static publishers\n\n" + tokens_file_line("ci-bot", token, Scopes.admin()))
    os.chmod(tokens, 0o644)
    client = create_app(
        replace(settings, publisher_tokens_file=str(tokens)), store=store
    ).test_client()
    response = client.put("/api/v1/channels/stable", **yaml_body(NEXT, token))
    assert (response.status_code, response.get_json()["publisher"]) == (200, "ci-bot")
    assert token not in tokens.read_text()
