"""The two sides of an air gap for tests: a vendor's server that exports offline bundles over
its HTTP API (Flask test client), and a fetcher that fails the test if an agent uses it."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from deployd.client.fetch import HttpResponse
from tests.support.http import basic
from tests.support.publisher_auth import bearer, yaml_body
from tests.support.world import World


def members(data: bytes) -> dict[str, bytes]:
    """The files of a bundle (a tar), by name."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}


class NoNetwork:
    """A fetcher that fails the test if the agent ever asks it for anything."""

    def get(self, url: str, *, headers: object, license: str | None) -> HttpResponse:
        pytest.fail(f"the agent went to the network: GET {url}")

    def close(self) -> None:
        pass


class Vendor:
    """The vendor's server (embedded store), exporting bundles over its HTTP API."""

    def __init__(self, root: Path, **settings: object) -> None:
        self.world = World(root, **settings)
        self.client = self.world.client  # builds the app, and with it the signing key
        self.token = self.world.publisher_token("release-eng")
        self.key = root / "state" / "dev-signing.pub"

    def export(self, license: str, **fields: object) -> bytes:
        answer = self.client.post(
            "/api/v1/bundles", json={"license": license, **fields}, headers=bearer(self.token)
        )
        assert answer.status_code == 200, answer.get_json()
        return answer.data

    def served(self, license: str, current: str | None = None) -> str:
        """The release a poll with `license` gets, from `current` when given."""
        headers = basic(license)
        if current is not None:
            headers["Deployd-Current-Version"] = current
        answer = self.client.get("/api/v1/operator/channel", headers=headers)
        return answer.get_json()["metadata"]["release"]

    def publish(self, text: str) -> None:
        answer = self.client.put("/api/v1/channels/stable", **yaml_body(text, self.token))
        assert answer.status_code == 200, answer.get_json()
