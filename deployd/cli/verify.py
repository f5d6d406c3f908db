"""`deployd verify`: a checklist for the administrator of an agent, from the URL to the reconciler.

Exit codes: 0 when no check failed, 1 when one did (or the options are wrong).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import deployd.client.bundle_checks  # noqa: F401  (registers the "bundle" checks)
import deployd.client.server_checks  # noqa: F401  (registers the "server" checks)
from deployd.cli import Subparsers
from deployd.client.checkup import check_source, run_checks
from deployd.client.site import Checkup, Site, SiteOptions
from deployd.errors import ConfigError

EXIT_OK = 0
EXIT_FAILED = 1


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="check an agent's setup: server, TLS, clock, license, spec, merge, reconciler",
        description="Check, in order, what the agent needs: the server URL, DNS, TCP, TLS (the"
        " certificate against the CA options, its expiry), the clock against the server's, the"
        " license (offline, then with the server), the channel spec (fetched, its signature"
        " against the trusted keys, its channel), the merge with the user input and"
        " custom-resource values, and the reconciler. With --bundle FILE, an offline bundle"
        " instead of the server, without the network: the file, the manifest's signature, who"
        " it is for, its expiry, the license, each spec, the release the agent would apply"
        " (from --cache-dir), the merge and the reconciler. Each check prints a line with a"
        " reason and, when it fails, a fix. Exit code 0 when none failed, 1 otherwise.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--server", metavar="URL", help="base URL of the deployd server")
    source.add_argument(
        "--bundle", metavar="FILE", help="check an offline bundle instead of a server"
    )
    parser.add_argument("--license-file", metavar="FILE", help="as for deployd agent")
    parser.add_argument(
        "--trust-key", metavar="FILE", action="append", default=[], help="as for deployd agent"
    )
    parser.add_argument(
        "--ca-bundle",
        metavar="PATH",
        action="append",
        default=[],
        help="CA certificates: a PEM file or a directory of *.crt files; as for deployd agent",
    )
    custom = parser.add_mutually_exclusive_group()
    custom.add_argument("--cr", metavar="FILE", help="a whole custom resource manifest")
    custom.add_argument("--cr-values", metavar="FILE", help="custom-resource values (YAML/JSON)")
    parser.add_argument("--user-values", metavar="FILE", help="user input values (YAML or JSON)")
    parser.add_argument("--channel", help="channel to follow (default: the license's)")
    parser.add_argument("--release", metavar="ID", help="a pinned release")
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--exec", dest="command", metavar="CMD", help="the agent's reconcile command (else helm)"
    )
    action.add_argument("--write", metavar="FILE", help="the agent's output file (else helm)")
    parser.add_argument(
        "--instance-id",
        metavar="ID",
        help="the agent's instance id, so that the fleet view counts this check as that cluster",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="with --bundle: the agent's cache directory, to step from the release it applied"
        " (default: a first install)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.cache_dir and not args.bundle:
        raise ConfigError("--cache-dir goes with --bundle (the server checks do not read it)")
    options = SiteOptions(
        server=args.server,
        bundle=Path(args.bundle) if args.bundle else None,
        license_file=args.license_file,
        trust_keys=tuple(args.trust_key),
        ca_bundles=tuple(args.ca_bundle),
        cr=args.cr,
        cr_values=args.cr_values,
        user_values=args.user_values,
        channel=args.channel,
        release=args.release,
        command=args.command,
        write=args.write,
        instance_id=args.instance_id,
        cache_dir=Path(args.cache_dir) if args.cache_dir else None,
    )
    checks_for = check_source("bundle" if args.bundle else "server")
    checkup = Checkup(Site(options))
    report = run_checks(checks_for(checkup), checkup)
    print(report.to_json() if args.json else report.to_text())
    return EXIT_OK if report.ok else EXIT_FAILED
