"""Publisher credentials: who may publish, roll back, promote and revoke, and where. A license
never may.

A publisher token is ``dpub_`` followed by 43 base64url characters (256 random bits). It is shown
once, when it is made; afterwards only its SHA-256 exists anywhere: in the store (`deployd
publisher create`), in a static tokens file of ``name:sha256hex[:actions[:channels]]`` lines, or,
for the embedded development server, as the hash of the token kept in
``<state dir>/dev-publisher.token``. The name a token belongs to is what history and revocations
record as the publisher.

Every token carries `Scopes`: the actions it may take (``publish``, ``promote``, ``rollback``,
``revoke``, ``admin``) and the channels (names or globs like ``beta-*``) that ``publish``,
``promote`` and ``rollback`` may change. ``admin`` implies every other action on every channel.
Credentials from before scopes existed (store records and tokens-file lines without them, the
development token) are ``admin``. `require_scope` is the one check every publisher endpoint makes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from deployd.errors import BadRequestError, ConfigError, DeploydError, PublisherAuthError
from deployd.files import create_exclusive
from deployd.store import ADMIN_ACTIONS, EVERY_CHANNEL, PublisherRecord, Store

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "dpub_"
TOKEN_PATTERN = re.compile(r"dpub_[A-Za-z0-9_-]{43}", re.ASCII)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}", re.ASCII)
HASH_PATTERN = re.compile(r"[0-9a-f]{64}", re.ASCII)
DEV_TOKEN_FILE = "dev-publisher.token"
DEV_PUBLISHER = "dev"

PUBLISH, PROMOTE, ROLLBACK, REVOKE, ADMIN = "publish", "promote", "rollback", "revoke", "admin"
ACTIONS = (PUBLISH, PROMOTE, ROLLBACK, REVOKE, ADMIN)
# The actions that change one channel, and so are limited by the channel globs.
CHANNEL_ACTIONS = frozenset({PUBLISH, PROMOTE, ROLLBACK})
# A channel name ([a-z0-9-]) with `*` (any run of characters) and `?` (one character).
GLOB_PATTERN = re.compile(r"[a-z0-9*?-]{1,63}", re.ASCII)


class ScopeError(DeploydError):
    """A valid publisher token asked for something outside its scopes: 403, naming the action
    and the channel (None for revocation) it lacks."""

    status = 403
    code = "scope_not_allowed"

    def __init__(self, message: str, *, action: str, channel: str | None) -> None:
        super().__init__(message)
        self.action = action
        self.channel = channel

    def to_dict(self) -> dict[str, Any]:
        body = super().to_dict()
        body["error"]["scope"] = {"action": self.action, "channel": self.channel}
        return body


@dataclass(frozen=True)
class Scopes:
    """What a publisher may do: `actions`, and the channel globs limiting the channel actions.

    ``admin`` implies every action on every channel. Build with `Scopes.of` (which checks and
    normalizes); `Scopes.admin()` is what credentials from before scopes get.
    """

    actions: frozenset[str]
    channels: tuple[str, ...]

    @classmethod
    def admin(cls) -> Scopes:
        return cls(frozenset(ADMIN_ACTIONS), EVERY_CHANNEL)

    @classmethod
    def of(cls, actions: Iterable[str], channels: Iterable[str]) -> Scopes:
        """Checked scopes; BadRequestError naming what is wrong.

        At least one action; every channel action needs at least one channel glob, and globs
        are only for channel actions. ``admin`` stands alone, for every channel.
        """
        wanted, globs = frozenset(actions), tuple(dict.fromkeys(channels))
        unknown = sorted(wanted - set(ACTIONS))
        if not wanted or unknown:
            problem = f"unknown action {unknown[0]!r}" if unknown else "no action given"
            raise BadRequestError(f"{problem}; the actions are {', '.join(ACTIONS)}")
        bad_globs = [g for g in globs if not GLOB_PATTERN.fullmatch(g)]
        if bad_globs:
            raise BadRequestError(
                f"channel {bad_globs[0]!r} is neither a channel name nor a glob of one"
                " (a-z, 0-9, '-', with '*' for any characters and '?' for one)"
            )
        if ADMIN in wanted:
            if globs not in ((), EVERY_CHANNEL) or len(wanted) > 1:
                raise BadRequestError(
                    "admin implies every action on every channel: give it alone, without"
                    " --channel (or with --channel '*')"
                )
            return cls.admin()
        if wanted & CHANNEL_ACTIONS and not globs:
            raise BadRequestError(
                "publish, promote and rollback need the channels they may change"
                " (--channel NAME or GLOB, repeatable)"
            )
        if globs and not wanted & CHANNEL_ACTIONS:
            raise BadRequestError(
                "channels limit only publish, promote and rollback; revoke concerns no channel"
            )
        return cls(wanted, globs)

    @classmethod
    def of_record(cls, record: PublisherRecord) -> Scopes:
        """The scopes a store record holds, as written (an unknown action just grants nothing)."""
        return cls(frozenset(record.actions), tuple(record.channels))

    def allows(self, action: str, channel: str | None = None) -> bool:
        """True when `action` (on `channel`, for the channel actions) is within these scopes."""
        if ADMIN in self.actions:
            return True
        if action not in self.actions:
            return False
        if action not in CHANNEL_ACTIONS:
            return True
        return channel is not None and any(fnmatchcase(channel, glob) for glob in self.channels)

    @property
    def sorted_actions(self) -> tuple[str, ...]:
        """The actions in the order of `ACTIONS` (how they are stored and shown)."""
        return tuple(a for a in ACTIONS if a in self.actions)

    def describe(self) -> str:
        """Like ``publish, promote on beta-*, stable``, ``revoke`` or ``admin``."""
        actions = ", ".join(self.sorted_actions)
        if ADMIN in self.actions or not self.actions & CHANNEL_ACTIONS:
            return actions
        return f"{actions} on {', '.join(self.channels)}"


@dataclass(frozen=True)
class Publisher:
    """Who a valid publisher token belongs to and what it may do."""

    name: str
    scopes: Scopes


def require_scope(publisher: Publisher, action: str, channel: str | None = None) -> None:
    """Raise ScopeError (403) unless `publisher` may take `action` (on `channel`).

    The one scope check: every publisher endpoint that changes something calls it before it
    reads its body, so a refused request changes nothing.
    """
    if publisher.scopes.allows(action, channel):
        return
    what = f"{action} channel {channel!r}" if channel is not None else f"{action} licenses"
    logger.warning("publisher %s refused: may not %s", publisher.name, what)
    raise ScopeError(
        f"publisher {publisher.name!r} may not {what}: its scopes are"
        f" {publisher.scopes.describe()}",
        action=action,
        channel=channel,
    )


def new_token() -> str:
    """A fresh publisher token: ``dpub_`` and 43 base64url characters from the OS's CSPRNG."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The SHA-256 hex digest of a publisher token: all that is ever stored of it."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def is_publisher_token(text: str) -> bool:
    """True when `text` has the shape of a publisher token (says nothing of whether it is valid)."""
    return TOKEN_PATTERN.fullmatch(text) is not None


def check_publisher_name(name: str) -> str:
    """`name` when it is a usable publisher name; BadRequestError otherwise."""
    if not NAME_PATTERN.fullmatch(name):
        raise BadRequestError(
            f"publisher name {name!r} must be 1-64 letters, digits, '.', '_', '@' or '-',"
            " starting with a letter or digit"
        )
    return name


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of a ``Bearer`` Authorization header value, else None."""
    if authorization is None:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


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
        digest = token_hash(unverified_token)
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


def load_tokens_file(path: str | os.PathLike[str]) -> dict[str, Publisher]:
    """Token hash -> publisher from a file of ``name:sha256hex[:actions[:channels]]`` lines.

    `actions` and `channels` are comma-separated (``ci:<hash>:publish,promote:stable,beta-*``,
    ``support:<hash>:revoke``); a line without them (the format before scopes) is ``admin``.
    Blank lines and lines starting with ``#`` are skipped. Raises ConfigError naming the line
    of any malformed entry, and for a file that group or others may write (anyone who can write
    it can make themselves a publisher).
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"publisher tokens file {path}: cannot read it: {e}") from e
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"publisher tokens file {path} is writable by group or others"
            f" (mode {oct(mode & 0o777)}); run chmod 644 on it"
        )
    table: dict[str, Publisher] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"publisher tokens file {path}, line {number}"
        digest, publisher = _tokens_file_entry(line, where)
        table[digest] = publisher
    return table


def _tokens_file_entry(line: str, where: str) -> tuple[str, Publisher]:
    """The token hash and publisher of one tokens-file line; ConfigError naming `where`."""
    name, _, rest = line.partition(":")
    digest, has_scopes, scopes_text = rest.partition(":")
    if not NAME_PATTERN.fullmatch(name) or not HASH_PATTERN.fullmatch(digest):
        raise ConfigError(
            f"{where}: expected NAME:SHA256HEX[:ACTIONS[:CHANNELS]]"
            " (`deployd publisher create NAME --tokens-file FILE ...` writes such lines)"
        )
    if not has_scopes:
        return digest, Publisher(name, Scopes.admin())
    actions, _, channels = scopes_text.partition(":")
    try:
        scopes = Scopes.of(_comma_list(actions), _comma_list(channels))
    except BadRequestError as e:
        raise ConfigError(f"{where}: {e.message}") from e
    return digest, Publisher(name, scopes)


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def tokens_file_line(name: str, token: str, scopes: Scopes) -> str:
    """The tokens-file line that lets `token` act as `name` within `scopes`."""
    line = f"{check_publisher_name(name)}:{token_hash(token)}:{','.join(scopes.sorted_actions)}"
    if scopes.actions & CHANNEL_ACTIONS and ADMIN not in scopes.actions:
        line += ":" + ",".join(scopes.channels)
    return line + "\n"


def dev_token(state_dir: str | os.PathLike[str]) -> str:
    """The development publisher token in `state_dir`, made (mode 0600) on first use.

    Several processes may start at once: the first to create the file wins, the rest read it.
    """
    directory = Path(state_dir)
    path = directory / DEV_TOKEN_FILE
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        try:
            create_exclusive(path, (new_token() + "\n").encode("ascii"), mode=0o600)
        except FileExistsError:
            pass
    try:
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the development publisher token: {e}") from e
    if not is_publisher_token(token):
        raise ConfigError(f"{path} does not hold a publisher token (dpub_...); delete it")
    return token


def static_publishers(
    *, tokens_file: str | None, state_dir: str, embedded: bool
) -> dict[str, Publisher]:
    """The token hashes a server accepts besides the store's: the tokens file and, on the
    embedded development server only, the development token (publisher ``dev``, admin)."""
    table = load_tokens_file(tokens_file) if tokens_file else {}
    if embedded:
        table[token_hash(dev_token(state_dir))] = Publisher(DEV_PUBLISHER, Scopes.admin())
        logger.warning(
            "accepting the development publisher token in %s/%s; with REDIS_URL set only"
            " publishers made with `deployd publisher create` are accepted",
            state_dir,
            DEV_TOKEN_FILE,
        )
    return table
