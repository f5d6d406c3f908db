"""Hostile requests never crash the server: random credentials, headers, paths and bodies get a 4xx
in the one JSON error shape (or a spec), never a 5xx. The regressions at the top were found by
these fuzzers; each was a 500 before its fix.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deployd.errors import LicenseError
from deployd.licensing.cache import CachedLicenseVerifier
from deployd.licensing.keyring import KeyRing
from deployd.licensing.tokens import LicenseVerifier
from deployd.publishers import new_token, token_hash
from tests.support.world import World

SPEC = "/api/v1/operator/channel"
VALIDATE = "/api/v1/licenses/validate"
REVOKE = "/api/v1/licenses/lic-1/revoke"
# Every endpoint that reads a JSON body, and whether it needs a publisher token.
JSON_ENDPOINTS = [
    (VALIDATE, False),
    (REVOKE, True),
    ("/api/v1/channels/stable/rollback", True),
    ("/api/v1/channels/stable/promote", True),
]
PATHS = [SPEC, SPEC + "/release/", "/api/v1/channels", "/api/v1/channels/", "/readyz"]

# What a real HTTP server hands the app: header values decoded as latin-1, one line, no NUL.
header_values = st.text(st.characters(max_codepoint=0xFF, exclude_characters="\r\n\x00"))
# Python strings a JSON body can produce, lone surrogates included.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    world = World(root, rate_limit_enabled=False)
    client, kit = world.client, world.kit
    return client, world.license(), kit


@pytest.fixture(scope="module")
def publisher(served):
    """Authorization headers of a publisher known to the served app's store."""
    client, _, _ = served
    token = new_token()
    client.application.extensions["deployd"].store.add_publisher("fuzz", token_hash(token))
    return {"Authorization": f"Bearer {token}"}


def assert_handled(response) -> None:
    assert response.status_code < 500, response.get_data()[:300]
    if response.status_code >= 400:
        error = response.get_json()["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)


FOUND = {
    "Basic credentials with a non-ASCII byte": (
        "GET",
        SPEC,
        {"Authorization": "Basic \x80"},
        None,
    ),
    "a license with a lone surrogate": ("POST", VALIDATE, {}, '{"license": "\\ud800.a.b"}'),
    "JSON nested past the recursion limit": ("POST", VALIDATE, {}, "[" * 100_000),
    "a revocation body nested past the recursion limit": (
        "POST",
        REVOKE,
        "publisher",
        "[" * 100_000,
    ),
}


@pytest.mark.parametrize(("method", "path", "headers", "body"), FOUND.values(), ids=FOUND)
def test_inputs_the_fuzzers_found_are_refused_cleanly(
    served, publisher, method, path, headers, body
):
    client, _, _ = served
    response = client.open(
        path,
        method=method,
        headers=publisher if headers == "publisher" else headers,
        data=body,
        content_type="application/json",
    )
    assert_handled(response)
    assert response.status_code in (200, 400, 401)


def test_random_credentials_and_headers_never_cause_a_server_error(served):
    client, license, _ = served

    @settings(deadline=None)
    @given(
        authorization=st.none()
        | header_values
        | header_values.map("Bearer ".__add__)
        | st.binary(max_size=60).map(lambda b: "Basic " + base64.b64encode(b).decode())
        | header_values.map("Basic ".__add__)
        | header_values.map(lambda t: "Bearer " + license[: len(t) * 7] + t),
        current_version=st.none() | header_values,
        if_none_match=st.none() | header_values,
        request_id=st.none() | header_values,
        channel=st.none() | any_text,
        path=st.sampled_from(PATHS),
        tail=any_text,
        method=st.sampled_from(["GET", "POST", "HEAD"]),
    )
    def check(
        authorization, current_version, if_none_match, request_id, channel, path, tail, method
    ):
        headers = {
            name: value
            for name, value in (
                ("Authorization", authorization),
                ("Deployd-Current-Version", current_version),
                ("If-None-Match", if_none_match),
                ("X-Request-Id", request_id),
            )
            if value is not None
        }
        if path.endswith("/"):
            path += quote(tail.encode("utf-8", "surrogatepass"), safe="")
        query = {"channel": channel.encode("utf-8", "surrogatepass")} if channel else None
        response = client.open(path, method=method, headers=headers, query_string=query)
        if method != "HEAD":
            assert_handled(response)
        else:
            assert response.status_code < 500

    check()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=10,
)


def _json_text(value) -> str:
    import json

    return json.dumps(value)


def test_random_json_bodies_never_cause_a_server_error(served, publisher):
    client, license, _ = served

    @settings(deadline=None)
    @given(
        body=st.one_of(
            st.binary(max_size=200),
            json_values.map(_json_text),
            json_values.map(lambda v: _json_text({"license": v})),
            any_text.map(lambda t: _json_text({"license": license[: len(t) * 9] + t})),
            st.integers(1, 5000).map(lambda depth: '{"license": ' * depth),
        ),
        content_type=st.sampled_from(["application/json", "text/plain", "application/x-yaml"]),
        endpoint=st.sampled_from(JSON_ENDPOINTS),
    )
    def check(body, content_type, endpoint):
        path, as_publisher = endpoint
        headers = publisher if as_publisher else {}
        response = client.post(path, data=body, content_type=content_type, headers=headers)
        assert_handled(response)
        if path == VALIDATE and response.status_code == 200:
            assert set(response.get_json()) == {"valid", "code", "message", "claims"}

    check()


def test_the_cached_verifier_only_ever_raises_license_errors(served):
    _, license, kit = served
    verifier = CachedLicenseVerifier(LicenseVerifier(KeyRing.from_dir(kit.keys_dir)))

    @settings(deadline=None)
    @given(prefix=st.integers(0, len(license)), noise=any_text)
    def check(prefix, noise):
        try:
            verifier.verify(license[:prefix] + noise)
        except LicenseError:
            pass

    check()
