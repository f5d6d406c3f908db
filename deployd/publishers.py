"""Publisher credentials: who may publish, roll back, promote and revoke. A license never may.

A publisher token is ``dpub_`` followed by 43 base64url characters (256 random bits). It is shown
once, when it is made; afterwards only its SHA-256 exists anywhere: in the store (`deployd
publisher create`), in a static tokens file of ``name:sha256hex`` lines, or, for the embedded
development server, as the hash of the token kept in ``<state dir>/dev-publisher.token``. The name
a token belongs to is what history and revocations record as the publisher.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from deployd.errors import BadRequestError, ConfigError, PublisherAuthError
from deployd.files import create_exclusive
from deployd.store import Store

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "dpub_"
TOKEN_PATTERN = re.compile(r"dpub_[A-Za-z0-9_-]{43}", re.ASCII)
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}", re.ASCII)
HASH_PATTERN = re.compile(r"[0-9a-f]{64}", re.ASCII)
DEV_TOKEN_FILE = "dev-publisher.token"
DEV_PUBLISHER = "dev"


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

    `static` maps token hashes to publisher names (tokens file, development token). It is
    compared entry by entry with `hmac.compare_digest`, so the time taken says nothing of which
    hashes it holds. The store is asked on every call, so a token revoked there stops working
    at once on every worker.
    """

    def __init__(self, store: Store, static: Mapping[str, str] | None = None) -> None:
        self.store = store
        self.static = dict(static or {})

    def authenticate(self, unverified_token: str | None) -> str:
        """The publisher's name; PublisherAuthError when the token is missing or not known.

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
        for known, name in self.static.items():
            if hmac.compare_digest(known, digest):
                found = name
        if found is None:
            found = self.store.publisher_for_hash(digest)
        if found is None:
            raise PublisherAuthError("unknown or revoked publisher token")
        return found


def load_tokens_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Token hash -> publisher name from a file of ``name:sha256hex`` lines.

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
    table: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, digest = line.partition(":")
        if not sep or not NAME_PATTERN.fullmatch(name) or not HASH_PATTERN.fullmatch(digest):
            raise ConfigError(
                f"publisher tokens file {path}, line {number}: expected NAME:SHA256HEX"
                " (`deployd publisher create NAME --tokens-file FILE` writes such lines)"
            )
        table[digest] = name
    return table


def tokens_file_line(name: str, token: str) -> str:
    """The tokens-file line that lets `token` publish as `name`."""
    return f"{check_publisher_name(name)}:{token_hash(token)}\n"


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


def static_publishers(*, tokens_file: str | None, state_dir: str, embedded: bool) -> dict[str, str]:
    """The token hashes a server accepts besides the store's: the tokens file and, on the
    embedded development server only, the development token (publisher ``dev``)."""
    table = load_tokens_file(tokens_file) if tokens_file else {}
    if embedded:
        table[token_hash(dev_token(state_dir))] = DEV_PUBLISHER
        logger.warning(
            "accepting the development publisher token in %s/%s; with REDIS_URL set only"
            " publishers made with `deployd publisher create` are accepted",
            state_dir,
            DEV_TOKEN_FILE,
        )
    return table
