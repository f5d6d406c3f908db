"""History, rollback and promotion over HTTP: every change is a new sequence; history only grows."""

from __future__ import annotations

import pytest

from deployd.channels import channel_digest, channel_from_document, parse_channel_text
from tests.support.factories import CHANNEL_YAML
from tests.support.http import basic, error_of
from tests.support.publisher_auth import add_publisher, bearer, yaml_body

STABLE = CHANNEL_YAML.format(name="stable")
BETA = CHANNEL_YAML.format(name="beta")
WITH_130 = (
    STABLE
    + """\
  - version: 1.3.0
    chart: {version: 0.13.0}
    values: {app: {image: {tag: "0.53.0"}}}
"""
)
BETA_WITH_140 = (
    BETA
    + """\
  - version: 1.4.0
    chart: {version: 0.14.0}
    values: {app: {image: {tag: "0.54.0"}}}
    notes: Faster.
    rollout: 50
"""
)


@pytest.fixture
def token(store) -> str:
    return add_publisher(store, "alice")


def put(client, token, name, text, **headers):
    response = client.put(f"/api/v1/channels/{name}", **yaml_body(text, token, **headers))
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def post(client, token, path, body, **headers):
    return client.post(path, json=body, headers={**bearer(token), **headers})


def test_history_lists_every_publish_newest_first(client, store, token):
    put(client, token, "stable", WITH_130)
    history = client.get("/api/v1/channels/stable/history", headers=bearer(token)).get_json()
    assert history["channel"] == "stable"
    assert history["sequence"] == 2
    entries = history["history"]
    assert [(e["sequence"], e["publisher"], e["summary"]) for e in entries] == [
        (2, "alice", "added 1.3.0"),
        (1, "seed", "created with 3 releases"),
    ]
    assert [e["digest"] for e in entries] == [r.digest for r in reversed(store.history("stable"))]
    assert all(e["publishedAt"].endswith("Z") for e in entries)
    assert all("document" not in e for e in entries)


def test_one_history_entry_has_its_document_and_source(client, store, token):
    put(client, token, "stable", WITH_130)
    entry = client.get("/api/v1/channels/stable/history/1", headers=bearer(token)).get_json()
    assert entry["source"] == STABLE
    assert entry["document"] == parse_channel_text(STABLE, filename="s").document
    assert entry["digest"] == channel_digest(entry["document"])
    current = client.get("/api/v1/channels/stable/document", headers=bearer(token))
    assert current.headers["ETag"] == '"2"'
    assert (current.get_json()["sequence"], current.get_json()["source"]) == (2, WITH_130)


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/api/v1/channels/ghost/history", "unknown_channel"),
        ("/api/v1/channels/ghost/history/1", "unknown_channel"),
        ("/api/v1/channels/stable/history/7", "unknown_sequence"),
        ("/api/v1/channels/ghost/document", "unknown_channel"),
    ],
)
def test_unknown_channels_and_sequences_are_404(client, token, path, code):
    assert error_of(client.get(path, headers=bearer(token))) == (404, code)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/channels/stable/history",
        "/api/v1/channels/stable/history/1",
        "/api/v1/channels/stable/document",
    ],
)
def test_history_is_for_publishers_only(client, license, path):
    assert error_of(client.get(path)) == (401, "publisher_unauthorized")
    assert error_of(client.get(path, headers=basic(license))) == (401, "publisher_unauthorized")


# --- rollback


def test_rollback_republishes_an_old_document_as_a_new_sequence(client, store, token, license):
    put(client, token, "stable", WITH_130)
    assert client.get("/api/v1/operator/channel", headers=basic(license)).get_json()["metadata"][
        "release"
    ] == ("1.3.0")
    response = post(client, token, "/api/v1/channels/stable/rollback", {"sequence": 1})
    assert response.status_code == 200
    body = response.get_json()
    assert (body["sequence"], body["changed"], body["rolledBackTo"]) == (3, True, 1)
    assert body["summary"] == "rollback to 1: removed 1.3.0"
    assert response.headers["ETag"] == '"3"'
    history = store.history("stable")
    assert [r.sequence for r in history] == [1, 2, 3]
    assert (history[2].document, history[2].source) == (history[0].document, history[0].source)
    assert history[2].digest == history[0].digest
    spec = client.get("/api/v1/operator/channel", headers=basic(license)).get_json()
    assert (spec["metadata"]["release"], spec["metadata"]["sequence"]) == ("1.2.0", "3")


def test_rolling_back_to_what_is_current_changes_nothing(client, store, token):
    response = post(client, token, "/api/v1/channels/stable/rollback", {"sequence": 1})
    assert (response.status_code, response.get_json()["changed"]) == (200, False)
    assert len(store.history("stable")) == 1


def test_rollback_with_a_stale_if_match_is_412(client, store, token):
    put(client, token, "stable", WITH_130)
    response = post(
        client, token, "/api/v1/channels/stable/rollback", {"sequence": 1}, **{"If-Match": '"1"'}
    )
    assert error_of(response) == (412, "sequence_conflict")
    assert store.get_channel("stable").sequence == 2


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"sequence": 9}, 404, "unknown_sequence"),
        ({"sequence": 0}, 400, "bad_request"),
        ({"sequence": "1"}, 400, "bad_request"),
        ({"sequence": True}, 400, "bad_request"),
        ({}, 400, "bad_request"),
        ([1], 400, "bad_request"),
    ],
)
def test_bad_rollbacks(client, store, token, body, status, code):
    response = post(client, token, "/api/v1/channels/stable/rollback", body)
    assert error_of(response) == (status, code)
    assert store.get_channel("stable").sequence == 1


def test_rollback_of_an_unknown_channel_is_404(client, token):
    response = post(client, token, "/api/v1/channels/ghost/rollback", {"sequence": 1})
    assert error_of(response) == (404, "unknown_channel")


# --- promotion


def test_promotion_copies_one_release_as_one_publish(client, store, token, license):
    put(client, token, "beta", BETA_WITH_140)
    response = post(
        client, token, "/api/v1/channels/stable/promote", {"from": "beta", "version": "1.4.0"}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert (body["sequence"], body["changed"]) == (2, True)
    assert body["summary"] == "promoted 1.4.0 from beta: added 1.4.0"
    assert body["promoted"] == {"from": "beta", "version": "1.4.0"}
    assert body["valuesDiffer"] == []
    stable = channel_from_document(store.get_channel("stable").document)
    beta = channel_from_document(store.get_channel("beta").document)
    assert stable.release("1.4.0") == beta.release("1.4.0")
    assert store.get_channel("stable").publisher == "alice"
    pinned = client.get("/api/v1/operator/channel/release/1.4.0", headers=basic(license)).get_json()
    assert (pinned["metadata"]["channel"], pinned["chart"]["version"]) == ("stable", "0.14.0")
    # The server wrote the source text: it parses back to the same document.
    record = store.get_channel("stable")
    assert parse_channel_text(record.source, filename="s").document == record.document


def test_promoting_again_changes_nothing(client, store, token):
    put(client, token, "beta", BETA_WITH_140)
    first = post(
        client, token, "/api/v1/channels/stable/promote", {"from": "beta", "version": "1.4.0"}
    )
    again = post(
        client, token, "/api/v1/channels/stable/promote", {"from": "beta", "version": "1.4.0"}
    )
    assert again.status_code == 200
    assert (again.get_json()["changed"], again.get_json()["sequence"]) == (
        False,
        first.get_json()["sequence"],
    )
    assert len(store.history("stable")) == 2


def test_a_release_that_differs_in_the_target_is_409(client, store, token):
    changed = BETA.replace('tag: "0.52.0"', 'tag: "0.52.9"')
    put(client, token, "beta", changed)
    response = post(
        client, token, "/api/v1/channels/stable/promote", {"from": "beta", "version": "1.2.0"}
    )
    assert error_of(response) == (409, "release_exists")
    assert store.get_channel("stable").sequence == 1


def test_promotion_can_stage_a_rollout(client, store, token):
    put(client, token, "beta", BETA_WITH_140)
    response = post(
        client,
        token,
        "/api/v1/channels/stable/promote",
        {"from": "beta", "version": "1.4.0", "rollout": 10},
    )
    assert response.status_code == 200
    stable = channel_from_document(store.get_channel("stable").document)
    assert stable.release("1.4.0").rollout == 10


CHANNEL_VALUES_DIFFER = BETA_WITH_140.replace("logLevel: info", "logLevel: debug")


def test_the_targets_channel_values_apply_and_are_reported(client, store, token):
    put(client, token, "beta", CHANNEL_VALUES_DIFFER)
    body = post(
        client, token, "/api/v1/channels/stable/promote", {"from": "beta", "version": "1.4.0"}
    ).get_json()
    assert body["valuesDiffer"] == ["values.global.logLevel"]
    stable = channel_from_document(store.get_channel("stable").document)
    assert stable.release("1.4.0").values["global"]["logLevel"] == "info"


def test_pinned_values_are_the_sources_exactly(client, store, token):
    put(client, token, "beta", CHANNEL_VALUES_DIFFER)
    body = post(
        client,
        token,
        "/api/v1/channels/stable/promote",
        {"from": "beta", "version": "1.4.0", "pinValues": True},
    ).get_json()
    assert body["valuesDiffer"] == []
    stable = channel_from_document(store.get_channel("stable").document)
    beta = channel_from_document(store.get_channel("beta").document)
    assert stable.release("1.4.0").values == beta.release("1.4.0").values
    assert stable.release("1.2.0").values["global"]["logLevel"] == "info"


def test_the_sources_chart_is_pinned_where_the_target_differs(client, store, token):
    oci = BETA_WITH_140.replace(
        "chart: {url: https://charts.example.com, name: server}",
        "chart: {url: oci://registry.example.com/charts/server}",
    )
    put(client, token, "beta", oci)
    response = post(
        client, token, "/api/v1/channels/stable/promote", {"from": "beta", "version": "1.4.0"}
    )
    assert response.status_code == 200
    stable = channel_from_document(store.get_channel("stable").document)
    assert stable.release("1.4.0").chart == {
        "url": "oci://registry.example.com/charts/server",
        "version": "0.14.0",
    }
    assert stable.release("1.2.0").chart["url"] == "https://charts.example.com"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("stable", {"from": "beta", "version": "9.9.9"}, 404, "unknown_release"),
        ("stable", {"from": "ghost", "version": "1.0.0"}, 404, "unknown_channel"),
        ("ghost", {"from": "beta", "version": "1.0.0"}, 404, "unknown_channel"),
        ("stable", {"from": "stable", "version": "1.0.0"}, 400, "bad_request"),
        ("stable", {"version": "1.0.0"}, 400, "bad_request"),
        ("stable", {"from": "beta", "version": "1.0.0", "rollout": 101}, 400, "bad_request"),
        ("stable", {"from": "beta", "version": "1.0.0", "pinValues": "yes"}, 400, "bad_request"),
    ],
)
def test_bad_promotions(client, store, token, path, body, status, code):
    response = post(client, token, f"/api/v1/channels/{path}/promote", body)
    assert error_of(response) == (status, code)
    assert store.sequences() == {"stable": 1, "beta": 1}


def test_promotion_with_a_stale_if_match_is_412(client, store, token):
    put(client, token, "beta", BETA_WITH_140)
    put(client, token, "stable", WITH_130)
    response = post(
        client,
        token,
        "/api/v1/channels/stable/promote",
        {"from": "beta", "version": "1.4.0"},
        **{"If-Match": '"1"'},
    )
    assert error_of(response) == (412, "sequence_conflict")


@pytest.mark.parametrize("action", ["rollback", "promote"])
def test_writes_are_for_publishers_only(client, store, license, action):
    body = {"sequence": 1, "from": "beta", "version": "1.0.0"}
    for headers in ({}, basic(license), bearer(license)):
        response = client.post(f"/api/v1/channels/stable/{action}", json=body, headers=headers)
        assert error_of(response) == (401, "publisher_unauthorized")
    assert store.sequences() == {"stable": 1, "beta": 1}
