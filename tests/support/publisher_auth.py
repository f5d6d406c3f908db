"""Publisher credentials for API tests."""

from __future__ import annotations

from deployd.publishers import Scopes, new_token, token_hash
from deployd.store import Store


def add_publisher(
    store: Store,
    name: str = "alice",
    *,
    revoked: bool = False,
    scopes: Scopes | None = None,
) -> str:
    """A fresh token that publishes as `name` in `store` within `scopes` (default: admin),
    already revoked if asked."""
    token = new_token()
    scopes = scopes or Scopes.admin()
    store.add_publisher(
        name, token_hash(token), actions=scopes.sorted_actions, channels=scopes.channels
    )
    if revoked:
        store.revoke_publisher(name)
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def yaml_body(text: str, token: str, **headers: str) -> dict:
    """Keyword arguments for `client.put` sending `text` as a YAML channel with `token`."""
    return {
        "data": text.encode("utf-8"),
        "content_type": "application/yaml",
        "headers": {**bearer(token), **headers},
    }
