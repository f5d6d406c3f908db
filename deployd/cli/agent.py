"""`deployd agent`: follow a release channel and reconcile one deployment to it.

Exit codes with ``--once``: 0 when the spec was applied or was already applied; 3 when the server
could not be reached or its answer was refused but the last good spec is in place (applied now
from the cache, or unchanged); 1 when there was no good spec, the reconciler failed, or the
configuration is wrong. Without ``--once`` it runs until SIGTERM or SIGINT and then exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from deployd.agentconsole.uservalues import UserValuesFile
from deployd.cli import Subparsers
from deployd.cli.agent_console import (
    DEFAULT_CACHE_DIR,
    console_options,
    register_password_command,
    run_with_console,
)
from deployd.client import (
    ClientConfig,
    CommandReconciler,
    CustomResource,
    FileReconciler,
    Poller,
    Reconciler,
    SyncAction,
    SyncResult,
    find_license,
    load_custom_resource,
    load_trusted_keys,
    load_values_file,
)
from deployd.client.poller import USER_AGENT
from deployd.client.reporting import ReportSender
from deployd.client.trust import load_ca_trust

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_STALE = 3


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from e
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "agent",
        help="follow a release channel and reconcile a deployment to it",
        description="Poll a deployd server (or read an offline spec bundle), verify the signed "
        "spec, merge channel < user values < custom resource, and hand the result to a command "
        "or a file whenever it changes. Exit codes with --once: 0 applied or unchanged, 3 served "
        "from the last good spec because the server failed, 1 failure.",
    )
    # Not required here, so that `deployd agent console-password` parses; `run` checks them.
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--server", metavar="URL", help="base URL of the deployd server")
    source.add_argument(
        "--offline-spec",
        metavar="FILE",
        help='air-gapped sites: a bundle {"body": "<exact body>", "signature": "<header>"}, '
        "verified like a server answer (the cache's spec.json is such a bundle)",
    )
    source.add_argument(
        "--bundle",
        metavar="FILE",
        help="air-gapped sites: an offline bundle for this license (deployd bundle export),"
        " verified like server answers; steps through required releases like a server",
    )
    parser.add_argument(
        "--license-file",
        metavar="FILE",
        help="file holding the license; else DEPLOYD_LICENSE, else global.license in the "
        "custom-resource or user values",
    )
    parser.add_argument(
        "--channel",
        help="channel to follow, the only one whose specs are accepted (default: the license's "
        "channel; required without a license that names one)",
    )
    parser.add_argument(
        "--release", metavar="ID", help="pin one release (also: _releaseId in the values)"
    )
    parser.add_argument(
        "--trust-key",
        metavar="FILE",
        action="append",
        help="trusted spec-signing key: PEM public key (key id = file stem) or JWKS JSON; repeat "
        "to trust several (key rotation)",
    )
    parser.add_argument(
        "--ca-bundle",
        metavar="PATH",
        action="append",
        help="CA certificates for TLS to the server, besides the public CAs: a PEM file, or a"
        " directory of *.crt files (a mounted ConfigMap); repeat for several. customCACerts in"
        " the custom-resource values are trusted too",
    )
    parser.add_argument("--user-values", metavar="FILE", help="user input values (YAML or JSON)")
    custom = parser.add_mutually_exclusive_group()
    custom.add_argument("--cr-values", metavar="FILE", help="custom-resource values (YAML/JSON)")
    custom.add_argument(
        "--cr", metavar="FILE", help="a whole custom resource manifest (spec.chart, spec.values)"
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--exec",
        dest="command",
        metavar="CMD",
        help="run CMD with the merged spec as JSON on stdin and in $DEPLOYD_SPEC_FILE",
    )
    action.add_argument("--write", metavar="FILE", help="write the merged spec to FILE atomically")
    parser.add_argument("--once", action="store_true", help="poll and reconcile once, then exit")
    parser.add_argument(
        "--instance-id",
        metavar="ID",
        default=os.environ.get("DEPLOYD_INSTANCE_ID") or None,
        help="this cluster's id for the server's fleet view, e.g. a hash of the kube-system"
        " namespace uid (default: $DEPLOYD_INSTANCE_ID, else a random id made once and kept in"
        " --cache-dir)",
    )
    parser.add_argument(
        "--kubernetes-version",
        metavar="VERSION",
        default=os.environ.get("DEPLOYD_KUBERNETES_VERSION") or None,
        help="the cluster's Kubernetes version, reported to the server (default:"
        " $DEPLOYD_KUBERNETES_VERSION)",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=DEFAULT_CACHE_DIR,
        help=f"where the last good spec and applied state live (default {DEFAULT_CACHE_DIR})",
    )
    parser.add_argument(
        "--interval",
        type=_positive_float,
        default=300.0,
        metavar="SECONDS",
        help="poll interval, jittered by 10%% (default 300)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="what the agent logs (default INFO: every poll's outcome and every reconcile)",
    )
    parser.add_argument(
        "--no-report",
        action="store_true",
        help="do not report the outcome of each reconcile to the server (by default it is sent,"
        " in the background, with the instance id kept in the cache directory)",
    )
    console_options(parser)
    parser.set_defaults(func=run, agent_parser=parser)
    commands = parser.add_subparsers(dest="agent_command", metavar="COMMAND")
    register_password_command(commands)


def _check_required(args: argparse.Namespace) -> None:
    parser: argparse.ArgumentParser = args.agent_parser
    if not args.trust_key:
        parser.error("the following arguments are required: --trust-key")
    if not (args.server or args.offline_spec or args.bundle):
        parser.error("one of the arguments --server --offline-spec --bundle is required")
    if not (args.command or args.write):
        parser.error("one of the arguments --exec --write is required")
    if args.once and args.console:
        parser.error("--console serves the console while the agent runs: drop --once")


def run(args: argparse.Namespace) -> int:
    _check_required(args)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    values_file = UserValuesFile.for_agent(args.user_values, Path(args.cache_dir))
    user_values = values_file.load()
    if user_values is not None and not args.user_values:
        logger.info("using the user values kept in %s", values_file.path)
    custom_resource = None
    if args.cr:
        custom_resource = load_custom_resource(args.cr)
    elif args.cr_values:
        custom_resource = CustomResource.from_values(load_values_file(args.cr_values))
    license = find_license(
        license_file=args.license_file,
        cr_values=custom_resource.values if custom_resource else None,
        user_values=user_values,
    )
    if license is not None:
        logger.info("using the license from the %s", license.source)
    elif args.server:
        logger.warning("no license found; asking the server anonymously")
    config = ClientConfig(
        server=args.server,
        offline_spec=Path(args.offline_spec) if args.offline_spec else None,
        offline_bundle=Path(args.bundle) if args.bundle else None,
        license=license.value if license else None,
        channel=args.channel,
        release=args.release,
        trusted_keys=load_trusted_keys(args.trust_key),
        ca_trust=load_ca_trust(
            args.ca_bundle or (), custom_resource.values if custom_resource else None
        ),
        cache_dir=Path(args.cache_dir),
        poll_interval=args.interval,
        instance_id=args.instance_id,
        kubernetes_version=args.kubernetes_version,
    )
    reconciler: Reconciler = (
        CommandReconciler(args.command, secrets=[license.value] if license else [])
        if args.command
        else FileReconciler(args.write)
    )
    with Poller(config, user_values=user_values, custom_resource=custom_resource) as poller:
        if args.server and license is not None and not args.no_report:
            # Reports name the instance the polls name.
            poller.reporter = ReportSender(
                server=args.server,
                license=license.value,
                instance_id=poller.instance_id,
                user_agent=USER_AGENT,
                ca_trust=config.ca_trust,
            )
        if args.once:
            return report(poller.sync_once(reconciler))
        if args.console:
            run_with_console(args, poller, reconciler, values_file)
            return EXIT_OK
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        poller.run(reconciler, stop)
    return EXIT_OK


def report(result: SyncResult) -> int:
    """Print what one `--once` cycle did and return the exit code."""
    if result.action in (SyncAction.NO_SPEC, SyncAction.FAILED):
        print(f"deployd: error: {result.message}", file=sys.stderr)
        return EXIT_FAILED
    desired = result.desired
    assert desired is not None
    where = f"release {desired.release} (channel {desired.channel}, sequence "
    where += f"{desired.metadata.get('sequence')})"
    if result.action is SyncAction.APPLIED:
        print(f"applied {where}")
    else:
        print(f"unchanged: {where} is applied")
    if not result.poll.fresh:
        print(f"deployd: warning: {result.poll.message}; used the last good spec", file=sys.stderr)
        return EXIT_STALE
    return EXIT_OK
