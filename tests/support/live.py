"""A World's app (the real create_app) served by werkzeug on 127.0.0.1 in a thread, for the CLI
and client tests that talk HTTP to a server in the same process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from deployd.channels import channel_digest, parse_channel_text
from deployd.server.app import create_app
from tests.support.factories import CHANNEL_YAML
from tests.support.world import World

NEXT_RELEASE = """\
  - version: 1.3.0
    chart: {version: 0.13.0}
    values: {app: {image: {tag: "0.53.0"}}}
"""


class _OneRequestPerConnection(WSGIRequestHandler):
    # No keep-alive: stopping the server then really cuts every client off, as a crash would.
    protocol_version = "HTTP/1.0"


@dataclass
class Captured:
    """One answer of the real server, byte for byte."""

    status: int
    body: bytes
    signature: str | None
    etag: str | None


class LiveServer:
    """`world`'s settings and store served on 127.0.0.1; a license for stable (and beta) at hand."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.settings = world.settings
        self.store = world.store
        self.kit = world.kit
        self.license = world.license()
        self.app = world.app
        self._server: BaseWSGIServer | None = None
        self.port = 0
        self._serve()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def signing_key(self) -> Path:
        """The embedded server's public spec-signing key (what an operator trusts)."""
        return Path(self.settings.state_dir) / "dev-signing.pub"

    def start(self) -> None:
        """Serve again on the same port, as a restarted process: a new app over the same store
        and signing key."""
        self.app = create_app(self.settings, store=self.store)
        self._serve()

    def _serve(self) -> None:
        self._server = make_server(
            "127.0.0.1",
            self.port,
            self.app,
            threaded=True,
            request_handler=_OneRequestPerConnection,
        )
        self.port = self._server.server_port
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def stop(self) -> None:
        """Kill the server: the port closes and nothing answers."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def issue(self, channel: str = "stable", channels: tuple[str, ...] = ("stable", "beta")) -> str:
        return self.world.license(channel, channels=list(channels))

    def publish(self, name: str, text: str) -> int:
        """Publish a channel document through the store, as `deployd publish` would."""
        document = parse_channel_text(text, filename=f"{name}.yaml").document
        record = self.store.publish(
            name,
            document=document,
            source=f"{name}.yaml",
            digest=channel_digest(document),
            publisher="client-tests",
            summary="client test publish",
        )
        # Server processes look at the store at most every refresh_interval: wait until it shows.
        deadline = time.monotonic() + 30
        marker = f'"sequence":"{record.sequence}"'.encode()
        while marker not in self.capture(f"/api/v1/operator/channel?channel={name}").body:
            assert time.monotonic() < deadline, "the server did not pick up the publish"
            time.sleep(0.01)
        return record.sequence

    def publish_next_release(self, name: str = "stable") -> int:
        return self.publish(name, CHANNEL_YAML.format(name=name) + NEXT_RELEASE)

    def capture(
        self, path: str = "/api/v1/operator/channel", *, license: str | None = None, **headers: str
    ) -> Captured:
        """GET an operator endpoint and keep the answer's exact bytes and headers."""
        response = requests.get(
            self.url + path,
            auth=("license", license or self.license),
            headers={k.replace("_", "-"): v for k, v in headers.items()},
            timeout=5,
        )
        return Captured(
            response.status_code,
            response.content,
            response.headers.get("Deployd-Signature"),
            response.headers.get("ETag"),
        )


@contextmanager
def serving(world: World) -> Iterator[LiveServer]:
    """`world` on loopback for the duration of the block."""
    server = LiveServer(world)
    try:
        yield server
    finally:
        server.stop()
