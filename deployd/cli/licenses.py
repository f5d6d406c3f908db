"""`deployd license issue|inspect|revoke`: licenses from the vendor's side.

Only `issue` ever prints a license, and only on stdout; nothing here logs one.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import jwt

from deployd.cli import Subparsers
from deployd.errors import BadRequestError, ConfigError, LicenseError
from deployd.licensing.keyring import KeyRing
from deployd.licensing.tokens import (
    MAX_INSTANCES_CLAIM,
    MAX_TOKEN_BYTES,
    LicenseVerifier,
    issue_license,
    mask,
    parse_duration,
)
from deployd.server.settings import settings_from_env

MAX_JTI_LENGTH = 128


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser("license", help="issue, inspect and revoke licenses")
    actions = parser.add_subparsers(dest="license_action", metavar="ACTION", required=True)

    issue = actions.add_parser(
        "issue",
        help="sign a license; prints only the license on stdout",
        description="Sign a license with a private key file (key id = file stem, algorithm from"
        " the key type) and print it on stdout, alone.",
    )
    issue.add_argument("--key", required=True, metavar="DIR/NAME.key", help="private key file")
    issue.add_argument("--customer", required=True, metavar="ID", help="customer id (sub)")
    issue.add_argument("--channel", required=True, metavar="NAME", help="channel it follows")
    issue.add_argument(
        "--channels",
        metavar="A,B",
        help="comma-separated channels it may ask for (default: just --channel)",
    )
    issue.add_argument(
        "--expires-in", default="30d", metavar="DURATION", help="like 30d, 12h, 2w (default 30d)"
    )
    issue.add_argument(
        "--claim",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an entitlement; VALUE is JSON when it parses (seats=10 is a number), else a string",
    )
    issue.add_argument(
        "--max-instances",
        type=_positive,
        metavar="N",
        help="how many clusters may poll with it at once (the maxInstances claim)",
    )
    issue.add_argument("--issuer", help="iss claim (default: DEPLOYD_ISSUER or deployd)")
    issue.add_argument("--audience", help="aud claim (default: DEPLOYD_AUDIENCE, else none)")
    issue.set_defaults(func=issue_command)

    inspect = actions.add_parser(
        "inspect",
        help="show a license's header and claims and whether the key ring accepts it",
        description="Print a license's header and claims and check it against the key ring"
        " (signature, key, times, issuer, audience; not revocation). Exits 0 when valid.",
    )
    inspect.add_argument(
        "token",
        nargs="?",
        metavar="LICENSE",
        help="the license; read from stdin when left out or '-' (keeps it out of ps)",
    )
    inspect.add_argument(
        "--keys-dir", metavar="DIR", help="public keys (default: DEPLOYD_KEYS_DIR or keys)"
    )
    inspect.set_defaults(func=inspect_command)

    revoke = actions.add_parser(
        "revoke",
        help="revoke a license by its id (jti) in the Redis store",
        description="Record a revocation in the store; servers refuse the license from then on.",
    )
    revoke.add_argument("jti", metavar="JTI", help="the license id (its jti claim)")
    revoke.add_argument("--reason", default="", help="why, kept with the revocation")
    revoke.add_argument("--redis-url", metavar="URL", help="the store (default: REDIS_URL)")
    revoke.add_argument(
        "--server",
        metavar="URL",
        help="revoke through a deployd server instead (default: DEPLOYD_SERVER), with a"
        " publisher token from DEPLOYD_PUBLISHER_TOKEN or --token",
    )
    revoke.add_argument("--token", metavar="TOKEN", help="publisher token for --server")
    revoke.set_defaults(func=revoke_command)


def issue_command(args: argparse.Namespace) -> int:
    settings = settings_from_env()
    warnings: list[str] = []
    token = issue_license(
        args.key,
        customer=args.customer,
        channel=args.channel,
        channels=_channel_list(args.channels) if args.channels is not None else None,
        expires_in=parse_duration(args.expires_in),
        claims=_with_max_instances(parse_claims(args.claim), args.max_instances),
        issuer=args.issuer if args.issuer is not None else settings.issuer,
        audience=args.audience if args.audience is not None else settings.audience,
        warn=warnings,
    )
    for warning in warnings:
        print(f"deployd: warning: {warning}", file=sys.stderr)
    print(token)
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def _with_max_instances(claims: dict[str, Any], max_instances: int | None) -> dict[str, Any]:
    if max_instances is not None:
        claims[MAX_INSTANCES_CLAIM] = max_instances
    return claims


def _channel_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _not_a_json_constant(name: str) -> Any:
    raise ValueError(name)


def parse_claims(pairs: list[str]) -> dict[str, Any]:
    """`NAME=VALUE` pairs as claims: VALUE as JSON when it is valid JSON, else the string itself.

    NaN and Infinity stay strings: they are not JSON.
    """
    claims: dict[str, Any] = {}
    for pair in pairs:
        name, equals, raw = pair.partition("=")
        if not equals or not name:
            raise BadRequestError(f"--claim {pair!r} must look like NAME=VALUE")
        try:
            claims[name] = json.loads(raw, parse_constant=_not_a_json_constant)
        except ValueError:
            claims[name] = raw
    return claims


def inspect_command(args: argparse.Namespace) -> int:
    settings = settings_from_env()
    read_stdin = args.token is None or args.token == "-"
    unverified_token = (sys.stdin.read() if read_stdin else args.token).strip()
    keyring = KeyRing.from_dir(args.keys_dir or settings.keys_dir, retired=settings.retired_key_ids)
    verifier = LicenseVerifier(
        keyring,
        issuer=settings.issuer,
        audience=settings.audience,
        leeway=settings.leeway_seconds,
    )
    header, unverified_claims = _unverified_parts(unverified_token)
    print(f"license: {mask(unverified_token)}")
    for title, part in (("header", header), ("claims", unverified_claims)):
        print(f"{title}:")
        print(json.dumps(part, indent=2) if part is not None else "  (cannot be decoded)")
    try:
        verifier.verify(unverified_token)
    except LicenseError as e:
        print(f"code: {e.code} ({e.message})")
        return 1
    print("code: valid")
    return 0


def _unverified_parts(
    unverified_token: str,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Header and claims as written, for display only: nothing here is checked."""
    if len(unverified_token) > MAX_TOKEN_BYTES:
        return None, None
    try:
        header = jwt.get_unverified_header(unverified_token)
    except jwt.PyJWTError:
        return None, None
    try:
        return header, jwt.decode(unverified_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return header, None


def revoke_command(args: argparse.Namespace) -> int:
    jti = args.jti.strip()
    if not jti or len(jti) > MAX_JTI_LENGTH or not jti.isprintable():
        # Never echo it: a whole license pasted here by mistake must not reach the terminal log.
        raise BadRequestError(
            "that is not a license id: pass the license's jti claim"
            " (`deployd license inspect` shows it), not the license itself"
        )
    server = args.server or (None if args.redis_url else os.environ.get("DEPLOYD_SERVER"))
    if server:
        from deployd.cli.remote import client_from

        client = client_from(server, args.token)
        try:
            already = client.revoke_license(jti, reason=args.reason)["already"]
        finally:
            client.close()
        print(f"license {jti} was already revoked" if already else f"revoked license {jti}")
        return 0
    overrides = {"redis_url": args.redis_url} if args.redis_url else {}
    settings = settings_from_env(**overrides)
    if settings.redis_url is None:
        raise ConfigError(
            "revocations are kept in Redis: pass --redis-url or set REDIS_URL"
            " (the embedded store would forget this one when the command exits)"
        )
    # The store (and its Redis client) is needed by this command only.
    from deployd.licensing.revocation import revoke_license
    from deployd.store import open_store

    if revoke_license(open_store(settings), jti, reason=args.reason, by="cli"):
        print(f"revoked license {jti}")
    else:
        print(f"license {jti} was already revoked")
    return 0
