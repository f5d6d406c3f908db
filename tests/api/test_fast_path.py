"""The fast path (deployd/api/fastpath.py) answers exactly what Flask would, or lets Flask answer.

Each request is sent twice: once through the whole app (fast path in front) and once to the Flask
app behind it, and the two answers must match byte for byte, but for a freshly made request id.
The tables say which requests the fast path must answer itself and which it must hand on.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace

import jwt
import pytest
from werkzeug.test import EnvironBuilder

from deployd.api.fastpath import FastPath
from deployd.channels import parse_channel_text
from deployd.protocol import SPEC_PATH, VALIDATE_PATH
from deployd.publishing import publish_channel
from deployd.server.app import create_app
from tests.support.factories import CHANNEL_YAML
from tests.support.http import basic

RELEASE_130 = "  - version: 1.3.0\n    chart: {version: 0.13.0}\n"


def environ_for(path: str, *, method: str = "GET", headers=None, json_body=None, **kwargs):
    builder = EnvironBuilder(
        path=path,
        method=method,
        headers=headers or {},
        json=json_body,
        environ_base={"REMOTE_ADDR": "192.0.2.10"},
        **kwargs,
    )
    try:
        environ = builder.get_environ()
        environ["wsgi.input"] = io.BytesIO(environ["wsgi.input"].read())
        return environ
    finally:
        builder.close()


def fresh(environ: dict) -> dict:
    """A copy of `environ` with its own unread body, for one more call."""
    return {**environ, "wsgi.input": io.BytesIO(environ["wsgi.input"].getvalue())}


def run_wsgi(wsgi_app, environ) -> tuple[str, dict[str, str], bytes]:
    """(status, headers without the request id, body) of one WSGI call."""
    answer: list = []
    chunks = wsgi_app(
        fresh(environ), lambda status, headers, exc_info=None: answer.extend([status, headers])
    )
    try:
        body = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    status, headers = answer
    names = [name for name, _ in headers]
    assert len(names) == len(set(names)), f"repeated headers: {names}"
    return status, {n: v for n, v in headers if n != "X-Request-Id"}, body


def run_wsgi_headers(wsgi_app, environ) -> list[tuple[str, str]]:
    headers: list = []
    wsgi_app(fresh(environ), lambda status, given, exc_info=None: headers.extend(given))
    return headers


def fast_path_of(app) -> FastPath:
    fast = app.wsgi_app
    assert isinstance(fast, FastPath)
    return fast


def both_ways(app, environ):
    """The answer through the fast path and the answer of Flask alone."""
    fast = fast_path_of(app)
    return run_wsgi(fast, environ), run_wsgi(fast.app, environ)


def fast_answer(app, environ):
    """What the fast path's handler says to `environ`: an Answer, or None to hand it to Flask."""
    fast = fast_path_of(app)
    handler = fast.handlers[environ["PATH_INFO"]]
    try:
        return handler(fast.deployd, fresh(environ))
    except Exception:
        return None


@pytest.fixture
def warm(app, client, license):
    """The app after one poll and one check with `license`: it is verified and its spec rendered."""
    assert client.get(SPEC_PATH, headers=basic(license)).status_code == 200
    assert client.post(VALIDATE_PATH, json={"license": license}).status_code == 200
    return app


def etag_of(client, license: str) -> str:
    return client.get(SPEC_PATH, headers=basic(license)).headers["ETag"]


ANSWERED = {
    "GET": lambda lic, etag: {"headers": basic(lic)},
    "Bearer": lambda lic, etag: {"headers": {"Authorization": f"Bearer {lic}"}},
    "legacy POST with a body": lambda lic, etag: {
        "method": "POST",
        "headers": basic(lic),
        "json_body": {"metadata": {}},
    },
    "If-None-Match: the ETag": lambda lic, etag: {"headers": {**basic(lic), "If-None-Match": etag}},
    "If-None-Match: weak, in a list": lambda lic, etag: {
        "headers": {**basic(lic), "If-None-Match": f'"other", W/{etag}'}
    },
    "If-None-Match: *": lambda lic, etag: {"headers": {**basic(lic), "If-None-Match": "*"}},
    "If-None-Match: another ETag": lambda lic, etag: {
        "headers": {**basic(lic), "If-None-Match": '"other"'}
    },
    "another allowed channel": lambda lic, etag: {
        "query_string": "channel=beta",
        "headers": basic(lic),
    },
    "below a required release": lambda lic, etag: {
        "headers": {**basic(lic), "Deployd-Current-Version": "1.0.0"}
    },
    "a current version that is not semver": lambda lic, etag: {
        "headers": {**basic(lic), "Deployd-Current-Version": "latest"}
    },
    "a request id to echo": lambda lic, etag: {
        "headers": {**basic(lic), "X-Request-Id": "abc-123"}
    },
}


@pytest.mark.parametrize("case", sorted(ANSWERED))
def test_polls_with_a_verified_license_are_answered_by_the_fast_path_as_flask_would(
    case, warm, client, license
):
    environ = environ_for(SPEC_PATH, **ANSWERED[case](license, etag_of(client, license)))
    assert fast_answer(warm, environ) is not None
    through_fast_path, flask_alone = both_ways(warm, environ)
    assert through_fast_path == flask_alone


def test_the_request_id_is_echoed_when_plain_and_made_up_otherwise(warm, license):
    fast = fast_path_of(warm)
    for given, echoed in [("abc-123", True), ("bad id!", False), (None, False)]:
        headers = basic(license) if given is None else {**basic(license), "X-Request-Id": given}
        request_id = dict(run_wsgi_headers(fast, environ_for(SPEC_PATH, headers=headers)))[
            "X-Request-Id"
        ]
        assert (request_id == given) is echoed
        assert request_id and len(request_id) <= 64


def test_a_check_of_a_verified_license_is_answered_by_the_fast_path_as_flask_would(warm, license):
    environ = environ_for(VALIDATE_PATH, method="POST", json_body={"license": license})
    assert fast_answer(warm, environ) is not None
    through_fast_path, flask_alone = both_ways(warm, environ)
    assert through_fast_path == flask_alone
    assert json.loads(through_fast_path[2])["valid"] is True


def _revoke(store, license):
    store.revoke(jwt.decode(license, options={"verify_signature": False})["jti"], reason="test")


HANDED_ON = {
    "no credentials": lambda kit, lic: environ_for(SPEC_PATH),
    "a license not verified yet": lambda kit, lic: environ_for(
        SPEC_PATH, headers=basic(kit.issue())
    ),
    "a malformed license": lambda kit, lic: environ_for(SPEC_PATH, headers=basic("x.y.z")),
    "an unknown scheme": lambda kit, lic: environ_for(
        SPEC_PATH, headers={"Authorization": "Digest abc"}
    ),
    "a channel the license may not read": lambda kit, lic: environ_for(
        SPEC_PATH, query_string="channel=other", headers=basic(lic)
    ),
    "an unknown channel": lambda kit, lic: environ_for(
        SPEC_PATH, headers=basic(kit.issue(channel="nope", channels=["nope"]))
    ),
    "a query it does not read": lambda kit, lic: environ_for(
        SPEC_PATH, query_string="channel=beta&x=1", headers=basic(lic)
    ),
    "an encoded query": lambda kit, lic: environ_for(
        SPEC_PATH, query_string="channel=%62eta", headers=basic(lic)
    ),
    "HEAD": lambda kit, lic: environ_for(SPEC_PATH, method="HEAD", headers=basic(lic)),
    "DELETE": lambda kit, lic: environ_for(SPEC_PATH, method="DELETE", headers=basic(lic)),
    "a body over the limit": lambda kit, lic: environ_for(
        SPEC_PATH, method="POST", headers=basic(lic), data=b"x" * 2_000_000
    ),
    "validate: a license not verified yet": lambda kit, lic: environ_for(
        VALIDATE_PATH, method="POST", json_body={"license": kit.issue()}
    ),
    "validate: no license": lambda kit, lic: environ_for(
        VALIDATE_PATH, method="POST", json_body={"license": ""}
    ),
    "validate: a license that is not a string": lambda kit, lic: environ_for(
        VALIDATE_PATH, method="POST", json_body={"license": 5}
    ),
    "validate: not JSON": lambda kit, lic: environ_for(
        VALIDATE_PATH, method="POST", data=b"{nope", content_type="application/json"
    ),
    "validate: JSON nested too deep": lambda kit, lic: environ_for(
        VALIDATE_PATH, method="POST", data=b"[" * 100_000, content_type="application/json"
    ),
    "validate: another content type": lambda kit, lic: environ_for(
        VALIDATE_PATH,
        method="POST",
        data=json.dumps({"license": lic}),
        content_type="text/plain",
    ),
    "validate: GET": lambda kit, lic: environ_for(VALIDATE_PATH, headers=basic(lic)),
}


@pytest.mark.parametrize("case", sorted(HANDED_ON))
def test_everything_else_is_handed_to_flask(case, warm, kit, license):
    environ = HANDED_ON[case](kit, license)
    assert fast_answer(warm, environ) is None
    through_fast_path, flask_alone = both_ways(warm, environ)
    assert through_fast_path == flask_alone


def test_a_revoked_license_is_refused_although_its_answer_is_in_memory(
    warm, client, store, license
):
    _revoke(store, license)
    warm.extensions["deployd"].state.refresh(force=True)
    environ = environ_for(SPEC_PATH, headers=basic(license))
    assert fast_answer(warm, environ) is None
    response = client.get(SPEC_PATH, headers=basic(license))
    assert (response.status_code, response.get_json()["error"]["code"]) == (403, "revoked")
    check = client.post(VALIDATE_PATH, json={"license": license}).get_json()
    assert (check["valid"], check["code"]) == (False, "revoked")


def test_a_license_past_its_expiry_is_handed_to_flask(warm, license):
    verifier = warm.extensions["deployd"].verifier
    expires_at = verifier.verify(license).expires_at
    verifier.clock = lambda: expires_at + verifier.verifier.leeway + 1
    for environ in (
        environ_for(SPEC_PATH, headers=basic(license)),
        environ_for(VALIDATE_PATH, method="POST", json_body={"license": license}),
    ):
        assert fast_answer(warm, environ) is None


def test_a_publish_is_served_by_the_fast_path_at_once(warm, client, store, license):
    before = client.get(SPEC_PATH, headers=basic(license))
    text = CHANNEL_YAML.format(name="stable") + RELEASE_130
    publish_channel(
        store, parse_channel_text(text, filename="stable.yaml"), source=text, publisher="test"
    )
    warm.extensions["deployd"].state.refresh(force=True)
    environ = environ_for(
        SPEC_PATH, headers={**basic(license), "If-None-Match": before.headers["ETag"]}
    )
    answer = fast_answer(warm, environ)
    assert answer is not None and answer.status == "200 OK"
    assert json.loads(answer.body)["metadata"]["release"] == "1.3.0"


@pytest.fixture
def limited(settings, store):
    """An app allowing 3 polls a minute per license and 5 per address."""
    return create_app(
        replace(settings, rate_limit_per_minute=3, rate_limit_per_address_per_minute=5),
        store=store,
    )


def test_each_answered_poll_counts_once_against_the_limits(limited, license):
    client = limited.test_client()
    statuses = [client.get(SPEC_PATH, headers=basic(license)).status_code for _ in range(4)]
    # The first poll verifies the license in Flask, the next two come from the fast path.
    assert statuses == [200, 200, 200, 429]
    # Four counted against the address (the 429 too, as Flask counts it): one is left.
    assert client.post(VALIDATE_PATH, json={"license": license}).status_code == 200
    assert client.post(VALIDATE_PATH, json={"license": license}).status_code == 429


def test_behind_a_proxy_the_fast_path_limits_the_forwarded_address(settings, store, kit):
    app = create_app(
        replace(settings, trusted_proxies=1, rate_limit_per_address_per_minute=2), store=store
    )
    client = app.test_client()
    licenses = [kit.issue() for _ in range(4)]
    for token in licenses:
        # Verified once (from another forwarded address), then polled from the fast path.
        client.get(SPEC_PATH, headers={**basic(token), "X-Forwarded-For": "198.51.100.99"})

    def poll(token: str, address: str) -> int:
        headers = {**basic(token), "X-Forwarded-For": address}
        return client.get(SPEC_PATH, headers=headers).status_code

    assert [poll(t, "203.0.113.1") for t in licenses[:3]] == [200, 200, 429]
    assert poll(licenses[3], "203.0.113.2") == 200


def test_the_anonymous_channel_is_served_from_the_fast_path(settings, store):
    app = create_app(replace(settings, anonymous_channel="stable"), store=store)
    client = app.test_client()
    assert client.get(SPEC_PATH).status_code == 200
    environ = environ_for(SPEC_PATH)
    assert fast_answer(app, environ) is not None
    through_fast_path, flask_alone = both_ways(app, environ)
    assert through_fast_path == flask_alone
    assert fast_answer(app, environ_for(SPEC_PATH, query_string="channel=beta")) is None
