"""The system console's password: made and printed once, kept only as a salted scrypt hash.

The hash lives in the agent's cache directory as ``console-password.json`` (mode 0600):
``{"algorithm": "scrypt", "n", "r", "p", "salt", "hash"}`` with base64 salt and hash. The
password itself is never written anywhere, and never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from deployd.client.cache import atomic_write
from deployd.errors import ConfigError

PASSWORD_FILE = "console-password.json"
MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 1024
# scrypt cost: about 16 MiB and tens of milliseconds per check, which also slows guessing.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_HASH_BYTES = 32


@dataclass(frozen=True)
class PasswordHash:
    salt: bytes
    digest: bytes
    n: int = SCRYPT_N
    r: int = SCRYPT_R
    p: int = SCRYPT_P

    @classmethod
    def of(cls, password: str) -> PasswordHash:
        salt = secrets.token_bytes(16)
        return cls(salt, _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))

    def matches(self, password: str) -> bool:
        if len(password) > MAX_PASSWORD_CHARS:
            return False
        attempt = _scrypt(password, self.salt, self.n, self.r, self.p)
        return hmac.compare_digest(attempt, self.digest)

    @property
    def stamp(self) -> str:
        """Changes whenever the password does (sessions signed in before a change end)."""
        return hashlib.sha256(self.salt + self.digest).hexdigest()

    def to_bytes(self) -> bytes:
        document = {
            "algorithm": "scrypt",
            "n": self.n,
            "r": self.r,
            "p": self.p,
            "salt": base64.b64encode(self.salt).decode(),
            "hash": base64.b64encode(self.digest).decode(),
        }
        return json.dumps(document, sort_keys=True).encode()


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32
    )


def check_new_password(password: str) -> None:
    """Raise ConfigError when `password` is too short or too long to be the console's."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise ConfigError(
            f"the console password must have at least {MIN_PASSWORD_CHARS} characters"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise ConfigError(f"the console password may have at most {MAX_PASSWORD_CHARS} characters")


class PasswordFile:
    """The console password's hash in a cache directory."""

    def __init__(self, cache_dir: Path) -> None:
        self.path = Path(cache_dir) / PASSWORD_FILE

    def load(self) -> PasswordHash | None:
        """The stored hash, or None when no password was set; ConfigError when damaged."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ConfigError(f"{self.path}: cannot read: {e.strerror}") from e
        try:
            document = json.loads(data)
            found = PasswordHash(
                salt=base64.b64decode(document["salt"], validate=True),
                digest=base64.b64decode(document["hash"], validate=True),
                n=int(document["n"]),
                r=int(document["r"]),
                p=int(document["p"]),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(
                f"{self.path}: damaged; set a new password with `deployd agent console-password`"
            ) from e
        if document.get("algorithm") != "scrypt" or len(found.digest) != _HASH_BYTES:
            raise ConfigError(f"{self.path}: not a scrypt password hash")
        return found

    def save(self, password: str) -> PasswordHash:
        check_new_password(password)
        hashed = PasswordHash.of(password)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(self.path, hashed.to_bytes())
        return hashed

    def ensure(self) -> str | None:
        """Make and store a random password when none is set; return it (to print once), or
        None when one was set already."""
        if self.load() is not None:
            return None
        password = secrets.token_urlsafe(18)
        self.save(password)
        return password
