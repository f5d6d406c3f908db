"""Masking of secrets in text the client logs, such as a reconciler's standard output and error.

A reconciler that echoes the merged spec (or runs ``helm`` with ``--debug``) would otherwise put
the license (``global.license``) and other secrets of the values into the agent's log.
`mask_secrets` is the one function that masks them; it errs on the side of masking too much.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from deployd.publishers import TOKEN_PREFIX

MASK = "***"

# A PEM private key block, whole (also JSON-escaped on one line); cut off at the end of the text
# when its END line is missing, as in a truncated tail.
_PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)", re.S
)
# A compact JWS (a license is one): its header is a base64url JSON object, so it starts "eyJ".
# Only where no base64url character precedes it (checked after the literal, which keeps the
# search fast), so a long run is scanned once.
_JWT = re.compile(r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]*+\.[A-Za-z0-9_-]++\.[A-Za-z0-9_-]*+")
_PUBLISHER_TOKEN = re.compile(re.escape(TOKEN_PREFIX) + r"[A-Za-z0-9_-]+")
_AUTH_SCHEME = re.compile(r"\b(Bearer|Basic)(\s+)[A-Za-z0-9._~+/=-]+", re.I)
_AUTH_WORDS = ("bearer", "basic")
# Lower-case words that make a name a secret's (password, passwd and passphrase start "passw").
_SECRET_WORDS = (
    "license",
    "passw",
    "passphrase",
    "token",
    "secret",
    "credential",
    "apikey",
    "api_key",
    "api-key",
    "privatekey",
    "private_key",
    "private-key",
)
# A whole run of name characters holding one of the words (taken possessively: no backtracking).
_SECRET_NAME = rf"(?=[A-Za-z0-9_.-]*?(?:{'|'.join(map(re.escape, _SECRET_WORDS))}))[A-Za-z0-9_.-]++"
# `name: value`, `"name": "value"`, `NAME=value`, `--name=value`, `--name value`: the value is
# a quoted string, or runs to the end of the line or a JSON/flow delimiter. A name starts only
# where no name character precedes it, so long runs of such characters are scanned once.
_SECRET_VALUE = re.compile(
    r"(?<![A-Za-z0-9_.-])"
    rf"""(?P<name>(?:["']?{_SECRET_NAME}["']?[ \t]*[:=]|--{_SECRET_NAME}[ \t]+)[ \t]*)"""
    r"""(?P<value>"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|(?![\[{])[^\s,;}\]][^\n,;}\]]*)""",
    re.I,
)


def mask_secrets(text: str, known: Iterable[str] = ()) -> str:
    """`text` with secrets replaced by ``***``: the `known` values (e.g. the client's own
    license, whatever its shape), PEM private keys, JWTs, publisher tokens (``dpub_...``),
    HTTP credentials, and values under names like license, password, token or secret."""
    for secret in sorted({k for k in known if k}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _PEM_PRIVATE_KEY.sub(MASK, text)
    text = _JWT.sub(MASK, text)
    text = _PUBLISHER_TOKEN.sub(MASK, text)
    if _mentions(text, _AUTH_WORDS):
        text = _AUTH_SCHEME.sub(rf"\1\2{MASK}", text)
    # Values never span lines; only lines that name a secret are worth the slower pattern.
    return "\n".join(
        _SECRET_VALUE.sub(_mask_value, line) if _mentions(line, _SECRET_WORDS) else line
        for line in text.split("\n")
    )


def _mentions(text: str, words: tuple[str, ...]) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in words)


def _mask_value(match: re.Match[str]) -> str:
    value = match["value"]
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match['name']}{quote}{MASK}{quote}"
