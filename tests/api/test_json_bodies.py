"""JSON bodies that parse but are refused: a key given twice, an integer too long to write out.

Every JSON body is read by one reader (deployd/api/request.py): the license check (by Flask or
by the fast path), the publisher endpoints and a channel published as JSON.
"""

from __future__ import annotations

import pytest

from tests.support.http import error_of
from tests.support.publisher_auth import add_publisher, bearer, yaml_body

VALIDATE = "/api/v1/licenses/validate"
HUGE = "9" * 5000
CHANNEL_JSON = (
    '{"name": "stable", "chart": {"path": "./chart"},\n'
    ' "values": {"replicas": %s},\n'
    ' "releases": [{"version": "1.0.0"}]}'
)


@pytest.fixture
def token(store) -> str:
    return add_publisher(store, "alice")


def post_json(client, path: str, text: str, headers: dict[str, str] | None = None):
    return client.post(path, data=text, content_type="application/json", headers=headers or {})


@pytest.mark.parametrize("verified_before", [False, True], ids=["flask", "fast path"])
def test_a_license_check_with_the_license_key_twice_is_400_naming_the_key(
    client, kit, license, verified_before
):
    if verified_before:  # the fast path answers repeat checks of a license it has verified
        assert post_json(client, VALIDATE, f'{{"license": "{license}"}}').status_code == 200
    other = kit.issue(customer="someone-else")
    response = post_json(client, VALIDATE, f'{{"license": "{other}", "license": "{license}"}}')
    assert error_of(response) == (400, "bad_request")
    assert "'license' appears twice" in response.get_json()["error"]["message"]


def test_a_nested_duplicate_key_is_refused_too(client, store, token):
    body = '{"reason": "leaked", "meta": {"a": 1, "a": 2}}'
    response = post_json(client, "/api/v1/licenses/abc/revoke", body, bearer(token))
    assert error_of(response) == (400, "bad_request")
    assert "'a' appears twice" in response.get_json()["error"]["message"]
    assert not store.is_revoked("abc")


@pytest.mark.parametrize(
    ("path", "publisher"),
    [
        (VALIDATE, False),
        ("/api/v1/licenses/abc/revoke", True),
        ("/api/v1/channels/stable/rollback", True),
        ("/api/v1/channels/stable/promote", True),
    ],
)
def test_an_integer_too_long_in_a_json_body_is_400_with_its_line(client, token, path, publisher):
    body = '{\n  "license": "x",\n  "reason": ' + HUGE + "\n}"
    response = post_json(client, path, body, bearer(token) if publisher else None)
    assert error_of(response) == (400, "bad_request")
    message = response.get_json()["error"]["message"]
    assert "(line 3)" in message
    assert "integer of 5000 digits" in message


def test_a_channel_with_an_integer_too_long_is_422_with_its_line_in_yaml(client, store, token):
    text = "name: stable\nchart: {path: ./chart}\nvalues:\n  n: 0x" + "f" * 4000 + "\n"
    text += "releases:\n  - version: 1.0.0\n"
    response = client.put("/api/v1/channels/stable", **yaml_body(text, token))
    assert error_of(response) == (422, "invalid_channel")
    [problem] = response.get_json()["error"]["problems"]
    assert (problem["line"], problem["field"]) == (4, "values.n")
    assert "more than 4300 digits" in problem["message"]
    assert store.get_channel("stable").sequence == 1


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (CHANNEL_JSON % HUGE, 2, "integer of 5000 digits"),
        (
            '{"name": "stable", "chart": {"path": "./a", "path": "./b"},\n'
            ' "releases": [{"version": "1.0.0"}]}',
            None,
            "'path' appears twice",
        ),
    ],
    ids=["integer too long", "duplicate key"],
)
def test_a_channel_published_as_refused_json_is_422(client, store, token, text, line, message):
    response = client.put(
        "/api/v1/channels/stable", data=text, content_type="application/json", headers=bearer(token)
    )
    assert error_of(response) == (422, "invalid_channel")
    [problem] = response.get_json()["error"]["problems"]
    assert problem["line"] == line
    assert message in problem["message"]
    assert store.get_channel("stable").sequence == 1
