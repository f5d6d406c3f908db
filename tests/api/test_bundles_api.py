"""`POST /api/v1/bundles` through the Flask test client: who may export, what a bad request gets
(each a JSON error) and what the answer holds."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import timedelta

import pytest

from deployd.errors import BadRequestError
from deployd.publishers import Scopes
from tests.support.http import basic, error_of
from tests.support.publisher_auth import add_publisher, bearer

URL = "/api/v1/bundles"


def members_of(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}


@pytest.fixture
def exporter(store):
    return add_publisher(store, "exporter", scopes=Scopes.of(["bundles"], []))


def test_a_token_with_the_bundles_scope_exports_what_the_license_is_served(client, world, exporter):
    license = world.license()
    answer = client.post(URL, json={"license": license}, headers=bearer(exporter))
    assert answer.status_code == 200, answer.get_json()
    assert answer.mimetype == "application/x-tar"
    assert 'filename="acme-stable-1.tar"' in answer.headers["Content-Disposition"]
    members = members_of(answer.data)
    manifest = json.loads(members["manifest.json"])
    assert (manifest["license"]["subject"], manifest["channel"]) == ("acme", "stable")
    # The newest release and the required one a caller below it steps through.
    assert [s["release"] for s in manifest["specs"]] == ["1.1.0", "1.2.0"]
    assert members["license.jwt"].decode().strip() == license
    polled = client.get("/api/v1/operator/channel", headers=basic(license)).get_json()
    bundled = json.loads(json.loads(members["specs/1.2.0.json"])["body"])
    for document in (polled, bundled):
        del document["metadata"]["issuedAt"], document["metadata"]["expires"]
    assert bundled == polled


@pytest.mark.parametrize(
    ("scopes", "channels"),
    [(["customers"], []), (["publish", "promote", "rollback", "rollout"], ["*"]), (["revoke"], [])],
)
def test_a_token_without_the_bundles_scope_is_refused(client, world, store, scopes, channels):
    token = add_publisher(store, "other", scopes=Scopes.of(scopes, channels))
    answer = client.post(URL, json={"license": world.license()}, headers=bearer(token))
    assert error_of(answer) == (403, "scope_not_allowed")
    error = answer.get_json()["error"]
    assert error["scope"] == {"action": "bundles", "channel": None}
    assert "may not export offline bundles" in error["message"]


def test_an_admin_token_exports(client, world, store):
    token = add_publisher(store, "root", scopes=Scopes.admin())
    answer = client.post(URL, json={"license": world.license()}, headers=bearer(token))
    assert answer.status_code == 200


def test_a_license_is_no_publisher_token(client, world):
    license = world.license()
    answer = client.post(
        URL, json={"license": license}, headers={"Authorization": f"Bearer {license}"}
    )
    assert error_of(answer)[0] == 401
    assert license not in answer.get_data(as_text=True)


def test_bundles_concern_no_channel():
    with pytest.raises(BadRequestError, match="nor do customers and bundles"):
        Scopes.of(["bundles"], ["stable"])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("not json", (400, "bad_request")),
        ({"channel": "stable"}, (400, "bad_request")),
        ({"license": "x", "colour": "red"}, (400, "bad_request")),
        ({"license": "LICENSE", "releases": "1.2.0"}, (400, "bad_request")),
        ({"license": "LICENSE", "expiresIn": "forever"}, (400, "bad_request")),
        ({"license": "LICENSE", "expiresIn": "400d"}, (400, "bad_request")),
        ({"license": "LICENSE", "releasesSince": "one"}, (400, "bad_request")),
        ({"license": "LICENSE", "releases": ["9.9.9"]}, (404, "unknown_release")),
        ({"license": "LICENSE", "channel": "nightly"}, (403, "channel_not_allowed")),
        ({"license": "not-a-jwt"}, (401, "malformed")),
        ({"license": "EXPIRED"}, (403, "expired")),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_requests_get_a_json_error(client, world, exporter, body, expected):
    licenses = {"LICENSE": world.license(), "EXPIRED": world.license(expires_in=timedelta(-1))}
    if isinstance(body, dict) and body.get("license") in licenses:
        body = {**body, "license": licenses[body["license"]]}
    kwargs = (
        {"data": body, "content_type": "text/plain"} if isinstance(body, str) else {"json": body}
    )
    answer = client.post(URL, headers=bearer(exporter), **kwargs)
    assert error_of(answer) == expected
    for license in licenses.values():
        assert license not in answer.get_data(as_text=True)


def test_a_customer_on_hold_needs_the_releases_named(client, world, store, exporter):
    admin = add_publisher(store, "support", scopes=Scopes.of(["customers"], []))
    held = client.put("/api/v1/customers/acme", json={"hold": True}, headers=bearer(admin))
    assert held.status_code == 200, held.get_json()
    license = world.license()
    answer = client.post(URL, json={"license": license}, headers=bearer(exporter))
    assert error_of(answer) == (400, "bad_request")
    assert "on hold" in answer.get_json()["error"]["message"]
    named = {"license": license, "releases": ["1.1.0"]}
    assert client.post(URL, json=named, headers=bearer(exporter)).status_code == 200
