"""Revoking a license: the one place a revocation is written, by HTTP and the CLI alike, and
recorded in the event log."""

from __future__ import annotations

from deployd.events import REVOKE, record_event
from deployd.store import Store


def revoke_license(store: Store, jti: str, *, reason: str = "", by: str) -> bool:
    """Revoke license `jti` as `by`; False when it was revoked already (then no event).

    The event names the license id and who revoked it, not the reason: that is free text, kept
    only with the revocation. Raises what `Store.revoke` raises."""
    newly = store.revoke(jti, reason=reason, by=by)
    if newly:
        record_event(store, REVOKE, actor=by, data={"jti": jti})
    return newly
