"""An app over a store nobody initialised (Redis new or emptied) serves and takes nothing; an app
whose store was replaced serves nothing it rendered from the old one."""

from __future__ import annotations

import time

import fakeredis
import pytest

from deployd.channels import parse_channel_text
from deployd.publishing import publish_channel
from deployd.server.app import create_app
from deployd.server.settings import Settings
from deployd.store.memory import MemoryStore
from deployd.store.redis import RedisStore
from tests.support.factories import CHANNEL_YAML, make_license_kit, write_channels
from tests.support.publisher_auth import add_publisher, bearer, yaml_body


@pytest.fixture
def world(tmp_path):
    kit = make_license_kit(tmp_path)
    store = RedisStore(fakeredis.FakeRedis(server=fakeredis.FakeServer()))
    settings = Settings(
        keys_dir=str(kit.keys_dir), state_dir=str(tmp_path / "state"), refresh_interval=0.01
    )
    client = create_app(settings, store=store).test_client()
    return kit, store, client


def test_publishing_and_revoking_into_an_uninitialised_store_name_the_way_out(world):
    kit, store, client = world
    token = add_publisher(store)
    text = CHANNEL_YAML.format(name="stable")
    response = client.put("/api/v1/channels/stable", **yaml_body(text, token))
    assert response.status_code == 503, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "store_uninitialized"
    assert "deployd store init" in error["message"]
    response = client.post("/api/v1/licenses/some-jti/revoke", json={}, headers=bearer(token))
    assert response.get_json()["error"]["code"] == "store_uninitialized"
    assert store.sequences() == {} and not store.is_revoked("some-jti")

    store.initialize()
    assert client.put("/api/v1/channels/stable", **yaml_body(text, token)).status_code == 201
    license = kit.issue()
    assert client.get("/api/v1/operator/channel", headers=bearer(license)).status_code == 200
    assert client.get("/readyz").status_code == 200


def test_an_uninitialised_store_is_not_ready_and_serves_no_spec(world):
    kit, _, client = world
    response = client.get("/readyz")
    assert (response.status_code, response.get_json()["error"]["code"]) == (
        503,
        "store_uninitialized",
    )
    response = client.get("/api/v1/operator/channel", headers=bearer(kit.issue()))
    assert (response.status_code, response.get_json()["error"]["code"]) == (
        503,
        "store_uninitialized",
    )


def test_the_embedded_store_is_initialised_when_it_is_created(tmp_path):
    kit = make_license_kit(tmp_path)
    settings = Settings(
        keys_dir=str(kit.keys_dir),
        channels_dir=str(write_channels(tmp_path / "channels")),
        state_dir=str(tmp_path / "state"),
    )
    client = create_app(settings).test_client()  # no store given: the embedded one, seeded
    assert client.get("/readyz").status_code == 200
    response = client.get("/api/v1/operator/channel", headers=bearer(kit.issue()))
    assert response.status_code == 200


def test_nothing_rendered_from_a_replaced_store_is_served(world, tmp_path):
    kit, store, client = world
    store.initialize()
    token = add_publisher(store)
    text = CHANNEL_YAML.format(name="stable")
    assert client.put("/api/v1/channels/stable", **yaml_body(text, token)).status_code == 201
    license = kit.issue()
    before = client.get("/api/v1/operator/channel", headers=bearer(license))
    assert before.get_json()["metadata"]["release"] == "1.2.0"
    # Another store's backup, where sequence 1 of stable is another document, restored over it.
    other_text = text + "  - version: 1.3.0\n    chart: {version: 0.13.0}\n"
    channel = parse_channel_text(other_text, filename="stable.yaml")
    replacement = MemoryStore()
    publish_channel(replacement, channel, source=other_text, publisher="x")
    store.restore(replacement.export(), force=True)

    def release() -> str:
        response = client.get("/api/v1/operator/channel", headers=bearer(license))
        return response.get_json()["metadata"]["release"]

    deadline = time.monotonic() + 20
    while release() == "1.2.0" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert release() == "1.3.0"
    assert (
        client.get("/api/v1/operator/channel", headers=bearer(license)).get_json()["metadata"][
            "sequence"
        ]
        == "1"
    )
