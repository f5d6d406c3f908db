"""Secrets stay secret: no license, private key or store password in a log line or a response.

Every error path is driven with logging at DEBUG, captured both by pytest and through the JSON
formatter the server uses (deployd/logs.py). Key files that others can write are refused.
"""

from __future__ import annotations

import io
import logging
import os
import re
import time
from dataclasses import replace
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from deployd.errors import KeyFileError
from deployd.keyfiles import write_key_pair
from deployd.licensing.keyring import generate_private_key
from deployd.logs import JsonFormatter
from deployd.publishers import new_token, token_hash
from deployd.server.app import create_app
from deployd.store.redis import RedisStore
from tests.support import jwt_forge
from tests.support.factories import make_license_kit
from tests.support.http import basic
from tests.support.redis_server import free_port
from tests.support.world import World

AUDIENCE = "deployd-test"
SPEC = "/api/v1/operator/channel"
STORE_PASSWORD = "s3cret-store-password"


class Secrets:
    """Everything that must never be written anywhere: tokens, key material, passwords."""

    def __init__(self) -> None:
        self.values: list[str] = [STORE_PASSWORD]

    def add(self, value: str) -> str:
        self.values.append(value)
        return value

    def add_key_file(self, path: Path) -> None:
        # Every base64 line of the PEM, and the PEM as a whole.
        text = path.read_text()
        self.values.append(text)
        self.values += [line for line in text.splitlines() if line and "-----" not in line]

    def assert_absent(self, text: str, where: str) -> None:
        for secret in self.values:
            # Also any long piece of it: a JWT segment, a publisher token without its prefix.
            fragments = [secret] + [p for p in re.split(r"[._]", secret) if len(p) >= 12]
            for fragment in fragments:
                assert fragment not in text, f"a secret appeared in {where}"


@pytest.fixture
def world(tmp_path):
    """An app with an audience, a retired key, a revoked license and every kind of bad license."""
    signing_key, _ = write_key_pair(generate_private_key(), tmp_path / "signing", "spec")
    os.chmod(signing_key, 0o600)
    world = World(
        tmp_path,
        retired_key_ids=("retired",),
        signing_key=str(signing_key),
        audience=AUDIENCE,
    )
    kit, settings, store = world.kit, world.settings, world.store
    retired = make_license_kit(tmp_path, kid="retired")
    secrets = Secrets()
    secrets.add_key_file(kit.private_key)
    secrets.add_key_file(retired.private_key)
    secrets.add_key_file(signing_key)
    private = serialization.load_pem_private_key(kit.private_key.read_bytes(), None)
    stranger = generate_private_key()

    def sign(key=private, kid="test", **changes) -> str:
        # A claim changed to None is left out.
        claims = jwt_forge.claims(**{"aud": AUDIENCE, "jti": os.urandom(8).hex(), **changes})
        claims = {name: value for name, value in claims.items() if value is not None}
        return secrets.add(jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid}))

    retired_private = serialization.load_pem_private_key(retired.private_key.read_bytes(), None)
    revoked = sign()
    store.revoke(jwt.decode(revoked, options={"verify_signature": False})["jti"], reason="test")
    licenses = {
        "valid": sign(),
        "malformed": secrets.add("not-a-jwt-but-secret-enough"),
        "malformed (truncated)": secrets.add(sign().rsplit(".", 1)[0]),
        "algorithm_not_allowed (none)": secrets.add(jwt_forge.unsigned()),
        "algorithm_not_allowed (HS256)": secrets.add(
            jwt_forge.hmac_with((kit.keys_dir / "test.pub").read_bytes())
        ),
        "unknown_key": sign(stranger, kid="nobody"),
        "key_retired": sign(retired_private, kid="retired"),
        "bad_signature": sign(stranger),
        "expired": sign(exp=int(time.time()) - 3600),
        "not_yet_valid": sign(nbf=int(time.time()) + 3600),
        "wrong_issuer": sign(iss="someone-else"),
        "wrong_audience": sign(aud="elsewhere"),
        "missing_claim": sign(jti=None),
        "revoked": revoked,
    }
    return settings, store, licenses, secrets


@pytest.fixture
def captured_logs(caplog):
    """Every record at DEBUG, also rendered by the server's JSON formatter."""
    caplog.set_level(logging.DEBUG)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield (
            lambda: (
                caplog.text
                + "\n".join(str(r.args) + (r.exc_text or "") for r in caplog.records)
                + stream.getvalue()
            )
        )
    finally:
        root.removeHandler(handler)


def requests_with(license: str | None) -> list[tuple[str, str, dict, dict | None]]:
    """(method, path, headers, json) for every way a license reaches the server."""
    auth = [basic(license), {"Authorization": f"Bearer {license}"}] if license else [{}]
    calls = []
    for headers in auth:
        calls += [
            ("GET", SPEC, headers, None),
            ("GET", SPEC + "?channel=beta", headers, None),
            ("POST", SPEC, headers, {"license": license}),
            ("GET", SPEC + "/release/1.0.0", headers, None),
            ("GET", "/api/v1/channels", headers, None),
            ("GET", "/api/v1/channels/stable", headers, None),
        ]
    calls.append(("POST", "/api/v1/licenses/validate", {}, {"license": license}))
    return calls


def test_no_license_reaches_a_log_or_a_response_on_any_path(world, captured_logs):
    settings, store, licenses, secrets = world
    client = create_app(replace(settings, rate_limit_enabled=False), store=store).test_client()
    codes = set()
    # Twice: the second round is answered from the per-worker caches.
    for name, license in [("missing", None), *licenses.items()] * 2:
        for method, path, headers, body in requests_with(license):
            response = client.open(path, method=method, headers=headers, json=body)
            where = f"{name}: {method} {path} -> {response.status_code}"
            secrets.assert_absent(response.get_data(as_text=True), f"the body of {where}")
            secrets.assert_absent(str(response.headers), f"the headers of {where}")
            payload = response.get_json(silent=True) or {}
            codes.add(payload.get("code") or payload.get("error", {}).get("code"))
    # The table above reached every license code the server can answer with.
    assert codes >= {
        "valid",
        "missing",
        "malformed",
        "algorithm_not_allowed",
        "unknown_key",
        "key_retired",
        "bad_signature",
        "expired",
        "not_yet_valid",
        "wrong_issuer",
        "wrong_audience",
        "missing_claim",
        "revoked",
        "channel_not_allowed",
    }
    secrets.assert_absent(captured_logs(), "the logs")


def test_no_publisher_token_reaches_a_log_or_a_response(world, captured_logs):
    settings, store, licenses, secrets = world
    valid = secrets.add(new_token())
    store.add_publisher("alice", token_hash(valid))
    revoked = secrets.add(new_token())
    store.add_publisher("mallory", token_hash(revoked))
    store.revoke_publisher("mallory")
    tokens = [valid, revoked, secrets.add(new_token()), "dpub_short", licenses["valid"]]
    client = create_app(replace(settings, rate_limit_enabled=False), store=store).test_client()
    calls = [
        ("PUT", "/api/v1/channels/stable", "name: stable\nreleases: [{version: 1.0.0}]\n"),
        ("PUT", "/api/v1/channels/stable", "not: [valid"),
        ("POST", "/api/v1/licenses/lic-1/revoke", '{"reason": "test"}'),
        ("POST", "/api/v1/channels/stable/rollback", '{"sequence": 99}'),
        ("GET", "/api/v1/channels/stable/history", None),
        ("GET", "/api/v1/channels", None),
    ]
    statuses = set()
    for token in tokens:
        for method, path, body in calls:
            response = client.open(
                path,
                method=method,
                data=body,
                content_type="application/yaml" if method == "PUT" else "application/json",
                headers={"Authorization": f"Bearer {token}"},
            )
            statuses.add(response.status_code)
            where = f"{method} {path} -> {response.status_code}"
            secrets.assert_absent(response.get_data(as_text=True), f"the body of {where}")
            secrets.assert_absent(str(response.headers), f"the headers of {where}")
    assert {200, 401, 404, 422} <= statuses
    secrets.assert_absent(captured_logs(), "the logs")


def test_a_store_outage_logs_neither_licenses_nor_the_store_password(world, captured_logs):
    settings, _, licenses, secrets = world
    url = f"redis://:{STORE_PASSWORD}@127.0.0.1:{free_port()}/0"
    store = RedisStore.from_url(url)
    app = create_app(replace(settings, redis_url=url, revocation_max_staleness=0.01), store=store)
    client = app.test_client()
    statuses = set()
    for license in (licenses["valid"], licenses["revoked"], licenses["bad_signature"]):
        for method, path, headers, body in requests_with(license) + [("GET", "/readyz", {}, None)]:
            response = client.open(path, method=method, headers=headers, json=body)
            statuses.add(response.status_code)
            secrets.assert_absent(response.get_data(as_text=True), f"the body of {method} {path}")
    assert 503 in statuses
    logs = captured_logs()
    assert "store unreachable" in logs
    secrets.assert_absent(logs, "the logs")
    store.client.close()


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_a_signing_key_others_can_write_stops_the_server_naming_the_file(world, mode):
    settings, store, _, secrets = world
    os.chmod(settings.signing_key, mode)
    with pytest.raises(KeyFileError) as refused:
        create_app(settings, store=store)
    assert Path(settings.signing_key).name in refused.value.message
    assert "chmod 600" in refused.value.message
    secrets.assert_absent(refused.value.message, "the error")


@pytest.mark.parametrize("mode", [0o640, 0o604])
def test_a_signing_key_others_can_read_is_a_warning(world, mode, captured_logs):
    settings, store, _, secrets = world
    os.chmod(settings.signing_key, mode)
    create_app(settings, store=store)
    logs = captured_logs()
    assert f"{Path(settings.signing_key).name}: private key is readable by group or others" in logs
    secrets.assert_absent(logs, "the logs")


def test_a_signing_key_that_is_no_private_key_is_refused_without_echoing_it(world, tmp_path):
    settings, store, _, secrets = world
    garbage = tmp_path / "spec-garbage.key"
    garbage.write_text(secrets.add("-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ1dC1icm9rZW4ta2V5\n"))
    os.chmod(garbage, 0o600)
    with pytest.raises(KeyFileError) as refused:
        create_app(replace(settings, signing_key=str(garbage)), store=store)
    assert "spec-garbage.key" in refused.value.message
    secrets.assert_absent(refused.value.message, "the error")
