"""Adding and revoking publishers in the store, each recorded in the event log (the CLI's
`deployd publisher create|revoke`, and whatever else changes publishers)."""

from __future__ import annotations

from deployd.events import PUBLISHER, record_event
from deployd.publishers.scopes import Scopes
from deployd.store import PublisherRecord, Store


def add_publisher(
    store: Store, name: str, token_hash: str, *, scopes: Scopes, actor: str
) -> PublisherRecord:
    """Let the token with SHA-256 `token_hash` publish as `name` within `scopes`; raises
    ConflictError as `Store.add_publisher` does. The event names the publisher and its scopes,
    never the token or its hash."""
    record = store.add_publisher(
        name, token_hash, actions=scopes.sorted_actions, channels=scopes.channels
    )
    record_event(
        store,
        PUBLISHER,
        actor=actor,
        data={"name": name, "change": "created", "scopes": scopes.describe()},
    )
    return record


def revoke_publisher(store: Store, name: str, *, actor: str) -> bool:
    """Stop `name`'s token from working; False (and no event) when it is not active."""
    revoked = store.revoke_publisher(name)
    if revoked:
        record_event(store, PUBLISHER, actor=actor, data={"name": name, "change": "revoked"})
    return revoked
