"""What the benchmark serves: keys, licenses, channels of realistic size, and a large store.

Channels are generated, not read from `channels/`, so every run serves the same shapes: a spec
body of about 5 KB, a staged rollout and a required release in every channel (so release
selection has real work to do), and licenses spread over the channels.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import redis
import yaml

from deployd.channels import channel_digest, channel_from_document, parse_channel_text
from deployd.keyfiles import key_id_for, load_private_key_file, write_key_pair
from deployd.licensing.keyring import generate_private_key
from deployd.licensing.tokens import issue_license
from deployd.protocol import utc_now
from deployd.publishing import publish_channel
from deployd.store import ChannelRecord
from deployd.store.redis import (
    CHANNEL,
    CHANNELS,
    GENERATION,
    HISTORY,
    REVOCATIONS,
    REVOKED,
    RedisStore,
)

PIPELINE_CHUNK = 2_000


@dataclass(frozen=True)
class Keys:
    license_keys_dir: Path  # public license keys, what DEPLOYD_KEYS_DIR names
    license_private_key: Path
    signing_key: Path  # the Ed25519 key that signs specs (DEPLOYD_SIGNING_KEY)


def make_keys(directory: Path) -> Keys:
    private_dir, keys_dir = directory / "private", directory / "license-keys"
    license_key, license_pub = write_key_pair(generate_private_key("EdDSA"), private_dir, "bench")
    keys_dir.mkdir(parents=True)
    (keys_dir / license_pub.name).write_bytes(license_pub.read_bytes())
    signing_key, _ = write_key_pair(generate_private_key("EdDSA"), directory / "signing", "spec")
    return Keys(keys_dir, license_key, signing_key)


def issue_licenses(keys: Keys, channels: list[str], count: int) -> list[str]:
    """`count` licenses, the i-th following channels[i % len(channels)]."""
    return [
        issue_license(
            keys.license_private_key,
            customer=f"customer-{i:05d}",
            channel=channels[i % len(channels)],
            expires_in=timedelta(days=30),
            claims={"seats": 25 + i % 100},
        )
        for i in range(count)
    ]


def sign_licenses(keys: Keys, channels: list[str], count: int) -> list[str]:
    """What `issue_licenses` returns, signed faster: the key is loaded once, not per license."""
    private_key = load_private_key_file(keys.license_private_key)
    kid = key_id_for(keys.license_private_key)
    now = int(time.time())
    return [
        jwt.encode(
            {
                "iss": "deployd",
                "sub": f"customer-{i:05d}",
                "jti": secrets.token_hex(16),
                "iat": now,
                "exp": now + 30 * 86400,
                "channel": channels[i % len(channels)],
                "channels": [channels[i % len(channels)]],
                "seats": 25 + i % 100,
            },
            private_key,  # type: ignore[arg-type]
            algorithm="EdDSA",
            headers={"kid": kid},
        )
        for i in range(count)
    ]


def basic_auth(license: str) -> str:
    """The Authorization value the W&B operator sends."""
    return "Basic " + base64.b64encode(f"license:{license}".encode()).decode()


def channel_document(name: str, releases: int, *, padding: int = 60) -> dict[str, Any]:
    """A valid channel document with `releases` releases and a spec body near 5 KB.

    The newest release is on a 50% rollout and the one before it at 90%; the middle release is
    required, so clients below it are stepped through it.
    """
    env = {f"SETTING_{i:03d}": f"value-{i:03d}-" + "x" * 40 for i in range(padding)}
    document: dict[str, Any] = {
        "name": name,
        "description": f"Benchmark channel {name}.",
        "chart": {"url": "https://charts.example.com", "name": "server"},
        "values": {
            "global": {"logLevel": "info", "host": "https://deployd.example.com"},
            "app": {"image": {"repository": "example/server", "tag": "0.1.0"}, "env": env},
        },
        "releases": [],
    }
    for i in range(releases):
        release: dict[str, Any] = {
            "version": f"1.{i}.0",
            "chart": {"version": f"0.{i}.0"},
            "values": {"app": {"image": {"tag": f"0.{50 + i}.0"}}},
            "releasedAt": "2026-09-01T12:00:00Z",
            "notes": f"Release 1.{i}.0.",
        }
        if i == releases // 2:
            release["required"] = True
        if i == releases - 1 and releases > 1:
            release["rollout"] = 50
        elif i == releases - 2:
            release["rollout"] = 90
        document["releases"].append(release)
    return document


def channel_yaml(document: dict[str, Any]) -> str:
    """The document as a release engineer would write it."""
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def publish_yaml(store: RedisStore, text: str, *, name: str) -> int:
    """Parse, validate and publish one channel file through deployd.publishing; its sequence."""
    channel = parse_channel_text(text, filename=f"{name}.yaml", expected_name=name)
    return publish_channel(store, channel, source=text, publisher="bench").record.sequence


def load_large_store(
    client: redis.Redis, store: RedisStore, *, channels: int, releases_each: int, revoked: int
) -> list[str]:
    """Write `channels` channels and `revoked` revocations straight into Redis; the names.

    Uses a pipeline with the store's own key layout (the constants of deployd.store.redis) and
    record format, because publishing them one transaction at a time would take minutes. One
    channel is read back through the store API and compiled, so a change of layout fails here.
    """
    names = [f"scale-{i:05d}" for i in range(channels)]
    template = channel_document("template", releases_each, padding=20)
    channel_from_document(template)  # the shape is valid; each copy differs only in its name
    now = utc_now()
    pipe = client.pipeline(transaction=False)
    for n, name in enumerate(names, start=1):
        document = {**template, "name": name}
        record = ChannelRecord(
            name=name,
            sequence=1,
            document=document,
            source=channel_yaml(document) if n == 1 else "(loaded by bench/world.py)",
            digest=channel_digest(document),
            published_at=now,
            publisher="bench",
            summary=f"created with {releases_each} releases",
        )
        payload = json.dumps(record.to_dict(), separators=(",", ":"))
        pipe.hset(store.prefix + CHANNELS, name, 1)
        pipe.set(store.prefix + CHANNEL + name, payload)
        pipe.hset(store.prefix + HISTORY + name, "1", payload)
        if n % PIPELINE_CHUNK == 0:
            pipe.execute()
    pipe.execute()
    entry = json.dumps({"revokedAt": now, "reason": "bench", "by": "bench"})
    for start in range(0, revoked, PIPELINE_CHUNK):
        jtis = [secrets.token_hex(16) for _ in range(min(PIPELINE_CHUNK, revoked - start))]
        pipe.hset(store.prefix + REVOKED, mapping=dict.fromkeys(jtis, entry))
        pipe.rpush(store.prefix + REVOCATIONS, *jtis)
        pipe.execute()
    # Workers notice the new state the way they notice any publish: the generation moves.
    client.incr(store.prefix + GENERATION)

    probe = store.get_channel(names[-1])
    if probe is None or channel_from_document(probe.document).name != names[-1]:
        raise RuntimeError("the loaded channels do not read back through RedisStore")
    return names
