"""The real server (deployd.server.app.create_app) on loopback in a thread, for the client's
live tests."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
import yaml
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from deployd.channels import channel_digest
from deployd.keyfiles import write_key_pair
from deployd.licensing.keyring import generate_private_key
from deployd.licensing.tokens import issue_license
from deployd.publishing import seed_store
from deployd.server.app import create_app
from deployd.server.settings import Settings
from deployd.store.memory import MemoryStore

CHANNEL = """\
name: {name}
description: Client test channel {name}.
chart: {{url: https://charts.example.com, name: server}}
values: {{global: {{logLevel: info}}, app: {{image: {{tag: "0.1.0"}}}}}}
releases:
  - version: 1.0.0
    chart: {{version: 0.10.0}}
    values: {{app: {{image: {{tag: "0.50.0"}}}}}}
  - version: 1.1.0
    chart: {{version: 0.11.0}}
    values: {{app: {{image: {{tag: "0.51.0"}}}}}}
    required: true
  - version: 1.2.0
    chart: {{version: 0.12.0}}
    values: {{app: {{image: {{tag: "0.52.0"}}}}}}
"""

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
    """create_app(settings, store=...) served by werkzeug on 127.0.0.1, with the store at hand."""

    def __init__(self, root: Path, **settings_overrides: Any) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        channels = root / "channels"
        channels.mkdir(exist_ok=True)
        for name in ("stable", "beta"):
            (channels / f"{name}.yaml").write_text(CHANNEL.format(name=name))
        keys = root / "keys"
        keys.mkdir(exist_ok=True)
        self.license_key, public = write_key_pair(generate_private_key(), root / "private", "test")
        (keys / public.name).write_bytes(public.read_bytes())
        fields = {
            "keys_dir": str(keys),
            "channels_dir": str(channels),
            "state_dir": str(root / "state"),
            "refresh_interval": 0.01,
            "rate_limit_enabled": False,
        }
        fields.update(settings_overrides)
        self.settings = Settings(**fields)
        self.store = MemoryStore()
        seed_store(self.store, self.settings.channels_dir)
        self.license = self.issue()
        self._server: BaseWSGIServer | None = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def signing_key(self) -> Path:
        """The embedded server's public spec-signing key (what an operator trusts)."""
        return Path(self.settings.state_dir) / "dev-signing.pub"

    def start(self) -> None:
        """Serve (again) on the same port; the store and signing key stay the same."""
        app = create_app(self.settings, store=self.store)
        self._server = make_server(
            "127.0.0.1", self.port, app, threaded=True, request_handler=_OneRequestPerConnection
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

    def issue(
        self, channel: str = "stable", channels: tuple[str, ...] = ("stable", "beta"), **kw: Any
    ) -> str:
        return issue_license(
            self.license_key,
            customer="acme",
            channel=channel,
            channels=list(channels),
            expires_in=kw.pop("expires_in", timedelta(days=30)),
            **kw,
        )

    def publish(self, name: str, text: str) -> int:
        """Publish a channel document through the store, as `deployd publish` would."""
        document = yaml.safe_load(text)
        record = self.store.publish(
            name,
            document=document,
            source=f"{name}.yaml",
            digest=channel_digest(document),
            publisher="client-tests",
            summary="client test publish",
        )
        # Server processes look at the store at most every refresh_interval: wait until it shows.
        deadline = time.monotonic() + 3
        marker = f'"sequence":"{record.sequence}"'.encode()
        while marker not in self.capture(f"/api/v1/operator/channel?channel={name}").body:
            assert time.monotonic() < deadline, "the server did not pick up the publish"
            time.sleep(0.01)
        return record.sequence

    def publish_next_release(self, name: str = "stable") -> int:
        return self.publish(name, CHANNEL.format(name=name) + NEXT_RELEASE)

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
