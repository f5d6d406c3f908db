"""One deployd world for a test: a key directory with a license key and a kit to issue licenses,
channel files, a store seeded with them, settings, and the app over that store."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from deployd.publishers import Scopes
from deployd.publishing import seed_store
from deployd.server.app import create_app
from deployd.server.settings import Settings
from deployd.store import Store
from deployd.store.memory import MemoryStore
from tests.support.factories import LicenseKit, make_license_kit, write_channels
from tests.support.publisher_auth import add_publisher


class World:
    """Everything under `root`: `keys/` + `private/` (the kit), `channels/` (stable and beta),
    `state/`. The store (a fresh memory store unless given one) is seeded with the channels;
    `settings` takes keyword overrides; the app is built on first use."""

    def __init__(
        self,
        root: Path,
        *,
        store: Store | None = None,
        channels: tuple[str, ...] = ("stable", "beta"),
        **settings_overrides: Any,
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.kit: LicenseKit = make_license_kit(root)
        self.channels_dir = write_channels(root / "channels", channels)
        fields: dict[str, Any] = {
            "keys_dir": str(self.kit.keys_dir),
            "channels_dir": str(self.channels_dir),
            "state_dir": str(root / "state"),
            "refresh_interval": 0.01,
        }
        fields.update(settings_overrides)
        self.settings = Settings(**fields)
        self.store: Store = MemoryStore() if store is None else store
        seed_store(self.store, self.channels_dir)

    @cached_property
    def app(self) -> Flask:
        return create_app(self.settings, store=self.store)

    @property
    def client(self) -> FlaskClient:
        return self.app.test_client()

    def license(self, channel: str = "stable", **kw: Any) -> str:
        """A license for `channel` that may also read stable and beta (unless told otherwise)."""
        kw.setdefault("channels", ["stable", "beta"])
        return self.kit.issue(channel=channel, **kw)

    def publisher_token(self, name: str = "alice", *, scopes: Scopes | None = None) -> str:
        """A fresh publisher token for `name` in the store (admin unless `scopes` say less)."""
        return add_publisher(self.store, name, scopes=scopes)
