"""The public development key (keys/dev.key, keys/dev.pub) is never trusted by a server on Redis
unless DEPLOYD_ALLOW_DEV_KEY says so; what a server trusts is logged at start, by key id only."""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from deployd.errors import ConfigError
from deployd.keyfiles import write_key_pair
from deployd.licensing.keyring import generate_private_key
from deployd.licensing.tokens import issue_license
from deployd.publishing import seed_store
from deployd.server.app import create_app
from deployd.server.services import check_configuration
from deployd.server.settings import Settings, settings_from_env
from deployd.store.memory import MemoryStore
from tests.support.factories import make_license_kit, write_channels
from tests.support.http import basic

REPO = Path(__file__).resolve().parents[1]
DEV_KEYS = REPO / "keys"
# Never connected to: a server refuses its configuration before it talks to the store.
REDIS_URL = "redis://127.0.0.1:1/0"


@pytest.fixture
def production(tmp_path) -> Settings:
    """A server on Redis with its own license key and response-signing key."""
    kit = make_license_kit(tmp_path)
    signing_key, _ = write_key_pair(generate_private_key(), tmp_path / "signing", "spec-2")
    return Settings(
        redis_url=REDIS_URL,
        keys_dir=str(kit.keys_dir),
        signing_key=str(signing_key),
        state_dir=str(tmp_path / "state"),
    )


def seeded_store(tmp_path: Path) -> MemoryStore:
    store = MemoryStore()
    seed_store(store, write_channels(tmp_path / "channels"))
    return store


def test_a_server_on_redis_without_deployd_keys_dir_refuses_to_start(
    production, tmp_path, monkeypatch
):
    monkeypatch.chdir(REPO)  # where the Procfile runs: keys/ holds the development key
    settings = Settings(redis_url=REDIS_URL, signing_key=production.signing_key)
    with pytest.raises(ConfigError) as refused:
        create_app(settings, store=seeded_store(tmp_path))
    assert "DEPLOYD_KEYS_DIR is unset" in refused.value.message
    assert "DEPLOYD_ALLOW_DEV_KEY" in refused.value.message


def _dev_license_key_renamed(settings: Settings, tmp_path: Path) -> dict[str, object]:
    shutil.copy(DEV_KEYS / "dev.pub", Path(settings.keys_dir) / "prod-2026.pub")
    return {}


def _dev_key_signing_responses(settings: Settings, tmp_path: Path) -> dict[str, object]:
    copy = tmp_path / "spec-3.key"
    shutil.copy(DEV_KEYS / "dev.key", copy)
    os.chmod(copy, 0o600)
    return {"signing_key": str(copy)}


def _dev_key_as_extra_signing_key(settings: Settings, tmp_path: Path) -> dict[str, object]:
    copy = tmp_path / "spec-1.pub"
    shutil.copy(DEV_KEYS / "dev.pub", copy)
    return {"extra_signing_keys": (str(copy),)}


@pytest.mark.parametrize(
    "hide, named",
    [
        (_dev_license_key_renamed, "license key 'prod-2026' in DEPLOYD_KEYS_DIR"),
        (_dev_key_signing_responses, "DEPLOYD_SIGNING_KEY (spec-3)"),
        (_dev_key_as_extra_signing_key, "extra signing key 'spec-1'"),
    ],
    ids=["renamed license key", "response-signing key", "extra signing key"],
)
def test_the_dev_key_under_any_name_or_role_stops_a_server_on_redis(
    production, tmp_path, hide, named
):
    settings = replace(production, **hide(production, tmp_path))
    with pytest.raises(ConfigError) as refused:
        create_app(settings, store=seeded_store(tmp_path))
    assert named in refused.value.message
    assert "is the development key" in refused.value.message


def test_allowing_the_dev_key_starts_warns_and_accepts_its_licenses(
    production, tmp_path, monkeypatch, caplog
):
    monkeypatch.chdir(REPO)
    settings = settings_from_env(
        {
            "REDIS_URL": REDIS_URL,
            "DEPLOYD_SIGNING_KEY": str(production.signing_key),
            "DEPLOYD_STATE_DIR": str(tmp_path / "state"),
            "DEPLOYD_ALLOW_DEV_KEY": "1",
        }
    )
    caplog.set_level(logging.INFO)
    client = create_app(settings, store=seeded_store(tmp_path)).test_client()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("DEPLOYD_ALLOW_DEV_KEY is set" in w and "'dev'" in w for w in warnings), warnings
    license = issue_license(
        DEV_KEYS / "dev.key", customer="test", channel="stable", expires_in=timedelta(1), warn=[]
    )
    response = client.get("/api/v1/operator/channel", headers=basic(license))
    assert response.status_code == 200, response.get_json()


def test_start_logs_every_key_id_and_role_but_no_key_material(tmp_path, caplog):
    own = make_license_kit(tmp_path / "own", kid="lic-2026")
    old = make_license_kit(tmp_path / "old", kid="lic-2025")
    shutil.copy(old.keys_dir / "lic-2025.pub", own.keys_dir)
    signing_key, _ = write_key_pair(generate_private_key(), tmp_path / "signing", "spec-2")
    _, previous = write_key_pair(generate_private_key(), tmp_path / "previous", "spec-1")
    settings = Settings(
        redis_url=REDIS_URL,
        keys_dir=str(own.keys_dir),
        retired_key_ids=("lic-2025",),
        signing_key=str(signing_key),
        extra_signing_keys=(str(previous),),
    )
    caplog.set_level(logging.INFO)
    create_app(settings, store=seeded_store(tmp_path))
    assert (
        "license keys: lic-2026 (EdDSA); retired license key ids: lic-2025;"
        " response-signing key: spec-2; extra signing keys: spec-1"
    ) in caplog.messages
    for path in [*own.keys_dir.iterdir(), own.private_key, old.private_key, signing_key, previous]:
        for line in path.read_text().splitlines():
            if "-----" not in line:
                assert line not in caplog.text, f"key material of {path.name} was logged"


def _unwritable_tokens_file(tmp_path: Path) -> dict[str, object]:
    tokens = tmp_path / "publishers"
    tokens.write_text("")
    os.chmod(tokens, 0o666)
    return {"publisher_tokens_file": str(tokens)}


@pytest.mark.parametrize(
    "change, complaint",
    [
        (lambda tmp_path: {"signing_key": None}, "DEPLOYD_SIGNING_KEY must name"),
        (lambda tmp_path: {"keys_dir": str(tmp_path / "nowhere")}, "does not exist"),
        (lambda tmp_path: {"issuer": ""}, "issuer is required"),
        (_unwritable_tokens_file, "writable"),
        (lambda tmp_path: {"redis_url": "redis://127.0.0.1:port/0"}, "not a usable Redis URL"),
        (
            lambda tmp_path: {"redis_url": "redis://127.0.0.1:6379/0?cluster=true"},
            "not a usable Redis URL: unknown option 'cluster'",
        ),
    ],
    ids=[
        "no signing key",
        "no key directory",
        "no issuer",
        "tokens file",
        "Redis URL",
        "Redis URL option",
    ],
)
def test_check_configuration_refuses_without_the_store_what_the_server_would_refuse(
    production, tmp_path, change, complaint
):
    check_configuration(production)  # connects to nothing: REDIS_URL names a closed port
    with pytest.raises(ConfigError, match=complaint):
        check_configuration(replace(production, **change(tmp_path)))
