"""Publisher credentials: who may publish, roll back, promote and revoke, and where. A license
never may.

A publisher token is ``dpub_`` followed by 43 base64url characters (256 random bits). It is shown
once, when it is made; afterwards only its SHA-256 exists anywhere: in the store (`deployd
publisher create`), in a static tokens file of ``name:sha256hex[:actions[:channels]]`` lines, or,
for the embedded development server, as the hash of the token kept in
``<state dir>/dev-publisher.token``. The name a token belongs to is what history and revocations
record as the publisher.

Every token carries `Scopes`: the actions it may take (``publish``, ``promote``, ``rollback``,
``rollout``, ``revoke``, ``customers``, ``admin``) and the channels (names or globs like
``beta-*``) that ``publish``, ``promote``, ``rollback`` and ``rollout`` (halt and resume
releases) may change. ``admin`` implies every other action on every channel. Credentials from
before scopes existed (store records and tokens-file lines without them, the development token)
are ``admin``. `require_scope` is the one check every publisher endpoint makes.
"""

from deployd.publishers.authenticator import PublisherAuthenticator
from deployd.publishers.scopes import (
    ACTIONS,
    ADMIN,
    BUNDLES,
    CHANNEL_ACTIONS,
    CUSTOMERS,
    PROMOTE,
    PUBLISH,
    REVOKE,
    ROLLBACK,
    ROLLOUT,
    Publisher,
    ScopeError,
    Scopes,
    require_scope,
)
from deployd.publishers.tokens import (
    DEV_PUBLISHER,
    DEV_TOKEN_FILE,
    TOKEN_PREFIX,
    check_publisher_name,
    dev_token,
    is_publisher_token,
    load_tokens_file,
    new_token,
    static_publishers,
    token_hash,
    tokens_file_line,
)

__all__ = [
    "ACTIONS",
    "ADMIN",
    "BUNDLES",
    "CHANNEL_ACTIONS",
    "CUSTOMERS",
    "DEV_PUBLISHER",
    "DEV_TOKEN_FILE",
    "PROMOTE",
    "PUBLISH",
    "REVOKE",
    "ROLLBACK",
    "ROLLOUT",
    "TOKEN_PREFIX",
    "Publisher",
    "PublisherAuthenticator",
    "ScopeError",
    "Scopes",
    "check_publisher_name",
    "dev_token",
    "is_publisher_token",
    "load_tokens_file",
    "new_token",
    "require_scope",
    "static_publishers",
    "token_hash",
    "tokens_file_line",
]
