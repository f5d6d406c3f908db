"""Which publisher a token belongs to: the static table (tokens file, dev token), then the store."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from deployd.errors import PublisherAuthError
from deployd.publishers.scopes import Publisher, Scopes
from deployd.publishers.tokens import is_publisher_token, token_hash
from deployd.store import Store


class PublisherAuthenticator:
    """Tells which publisher a token belongs to: the static table first, then the store.

    `static` maps token hashes to publishers (tokens file, development token). It is compared
    entry by entry with `hmac.compare_digest`, so the time taken says nothing of which hashes it
    holds. The store is asked on every call, so a token revoked (or a publisher whose scopes
    changed) there is seen at once on every worker.
    """

    def __init__(self, store: Store, static: Mapping[str, Publisher] | None = None) -> None:
        self.store = store
        self.static = dict(static or {})

    def authenticate(self, unverified_token: str | None) -> Publisher:
        """The publisher and its scopes; PublisherAuthError when the token is missing or not
        known.

        Raises StoreUnavailableError when the store has to be asked and cannot answer.
        """
        if not unverified_token:
            raise PublisherAuthError(
                "a publisher token is required: send 'Authorization: Bearer dpub_...'"
            )
        if not is_publisher_token(unverified_token):
            raise PublisherAuthError(
                "that is not a publisher token (dpub_...); a license never grants publishing"
            )
        return self.authenticate_hash(token_hash(unverified_token))

    def authenticate_hash(self, digest: str) -> Publisher:
        """The publisher whose token hashes to `digest` (a console session keeps only the hash);
        PublisherAuthError when no known token does, as `authenticate`."""
        found = None
        for known, publisher in self.static.items():
            if hmac.compare_digest(known, digest):
                found = publisher
        if found is None:
            record = self.store.publisher_for_hash(digest)
            if record is not None:
                found = Publisher(record.name, Scopes.of_record(record))
        if found is None:
            raise PublisherAuthError("unknown or revoked publisher token")
        return found
