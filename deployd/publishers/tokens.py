"""Publisher tokens: their format and hash, the static tokens file and the development token.

A token is shown once, when it is made; afterwards only its SHA-256 exists anywhere.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import stat
from pathlib import Path

from deployd.errors import BadRequestError, ConfigError
from deployd.files import create_exclusive
from deployd.publishers.scopes import ADMIN, CHANNEL_ACTIONS, Publisher, Scopes

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
