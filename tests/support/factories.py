"""Test helpers shared across suites: key rings, license tokens and channel documents."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from deployd.keyfiles import write_key_pair
from deployd.licensing.keyring import generate_private_key
from deployd.licensing.tokens import issue_license

CHANNEL_YAML = """\
name: {name}
description: Test channel {name}.
chart: {{url: https://charts.example.com, name: server}}
values: {{global: {{logLevel: info}}, app: {{image: {{tag: "0.1.0"}}}}}}
releases:
  - version: 1.0.0
    chart: {{version: 0.10.0}}
    values: {{app: {{image: {{tag: "0.50.0"}}}}}}
    releasedAt: 2026-09-01T12:00:00Z
  - version: 1.1.0
    chart: {{version: 0.11.0}}
    values: {{app: {{image: {{tag: "0.51.0"}}}}}}
    required: true
  - version: 1.2.0
    chart: {{version: 0.12.0}}
    values: {{app: {{image: {{tag: "0.52.0"}}}}}}
"""


@dataclass
class LicenseKit:
    """A key directory with one license key (`test`) and a way to issue licenses with it."""

    keys_dir: Path
    private_key: Path

    def issue(
        self,
        *,
        customer: str = "acme",
        channel: str = "stable",
        channels: list[str] | None = None,
        expires_in: timedelta = timedelta(days=30),
        **claims: Any,
    ) -> str:
        now = None
        if expires_in <= timedelta(0):
            # Issued an hour before it expired, `expires_in` ago.
            now = datetime.now(UTC) + expires_in - timedelta(hours=1)
            expires_in = timedelta(hours=1)
        return issue_license(
            self.private_key,
            now=now,
            customer=customer,
            channel=channel,
            channels=channels,
            expires_in=expires_in,
            claims=claims or None,
        )


def make_license_kit(directory: Path, kid: str = "test", alg: str = "EdDSA") -> LicenseKit:
    keys_dir = directory / "keys"
    private_dir = directory / "private"
    key_path, pub_path = write_key_pair(generate_private_key(alg), private_dir, kid)
    keys_dir.mkdir(exist_ok=True)
    (keys_dir / pub_path.name).write_bytes(pub_path.read_bytes())
    return LicenseKit(keys_dir, key_path)


def write_channels(directory: Path, names: tuple[str, ...] = ("stable", "beta")) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        (directory / f"{name}.yaml").write_text(CHANNEL_YAML.format(name=name))
    return directory
