"""`deployd keys generate`: a new key pair, for signing licenses or spec responses."""

from __future__ import annotations

import argparse
from pathlib import Path

from deployd.cli import Subparsers
from deployd.errors import ConfigError, KeyFileError
from deployd.keyfiles import KEY_ID, write_key_pair
from deployd.licensing.keyring import ALGORITHMS, generate_private_key


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "keys", help="make key pairs: license keys, and the server's spec-signing key"
    )
    actions = parser.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    generate = actions.add_parser(
        "generate",
        help="write a new key pair: DIR/NAME.key (private, mode 0600) and DIR/NAME.pub",
        description="Write a new key pair. A license key: the private key (PKCS#8 PEM, mode"
        " 0600) signs licenses with `deployd license issue`; copy only the .pub file into the"
        " server's DEPLOYD_KEYS_DIR. The response-signing key (EdDSA): point"
        " DEPLOYD_SIGNING_KEY at the .key file and give clients the .pub file. Existing files"
        " are never overwritten.",
    )
    generate.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory")
    generate.add_argument(
        "--kid",
        required=True,
        metavar="NAME",
        help="key id: the file stem, named by the licenses or specs it signs",
    )
    generate.add_argument(
        "--alg",
        choices=list(ALGORITHMS),
        default="EdDSA",
        help="algorithm (default EdDSA; the response-signing key must be EdDSA)",
    )
    generate.set_defaults(func=generate_key_pair)


def generate_key_pair(args: argparse.Namespace) -> int:
    if not KEY_ID.fullmatch(args.kid):
        raise ConfigError(
            f"key id {args.kid!r} must be up to 64 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    existing = [
        str(path)
        for path in (args.out / f"{args.kid}.key", args.out / f"{args.kid}.pub")
        if path.exists()
    ]
    if existing:
        raise KeyFileError(f"refusing to overwrite existing {' and '.join(existing)}")
    try:
        paths = write_key_pair(generate_private_key(args.alg), args.out, args.kid)
    except FileExistsError as e:
        raise KeyFileError(f"refusing to overwrite existing {e.filename}") from e
    except OSError as e:
        raise KeyFileError(f"cannot write the key pair into {str(args.out)!r}: {e.strerror}") from e
    for path in paths:
        print(path)
    return 0
