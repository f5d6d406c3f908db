"""GET /api/v1/channels and /api/v1/channels/<name>: what a license may see of the channels."""

from __future__ import annotations

from tests.support.http import basic, error_of


def test_list_shows_only_readable_channels(client, kit):
    only_stable = kit.issue(channel="stable")
    body = client.get("/api/v1/channels", headers=basic(only_stable)).get_json()
    assert [c["name"] for c in body["channels"]] == ["stable"]
    both = kit.issue(channel="stable", channels=["stable", "beta"])
    body = client.get("/api/v1/channels", headers=basic(both)).get_json()
    assert sorted(c["name"] for c in body["channels"]) == ["beta", "stable"]
    assert body["channels"][0]["sequence"] == 1


def test_channel_detail_lists_releases_newest_first(client, license):
    body = client.get("/api/v1/channels/stable", headers=basic(license)).get_json()
    assert body["name"] == "stable"
    assert [r["version"] for r in body["releases"]] == ["1.2.0", "1.1.0", "1.0.0"]
    first = body["releases"][0]
    assert first["chartVersion"] == "0.12.0"
    assert first["rollout"] == 100
    assert body["releases"][1]["required"] is True


def test_channels_need_a_license(client):
    assert error_of(client.get("/api/v1/channels")) == (401, "missing")


def test_unknown_and_forbidden_channels(client, kit):
    token = kit.issue(channel="stable", channels=["stable", "ghost"])
    assert error_of(client.get("/api/v1/channels/ghost", headers=basic(token))) == (
        404,
        "unknown_channel",
    )
    assert error_of(client.get("/api/v1/channels/beta", headers=basic(token))) == (
        403,
        "channel_not_allowed",
    )
