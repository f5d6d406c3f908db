"""`deployd bundle export|inspect|import`: offline bundles for air-gapped sites (deployd.offline).

`export` runs on the vendor's side, against a server (`--server`, a publisher token with the
`bundles` action) or the servers' Redis directly (`--redis-url`, with the server's signing key
and license keys in the environment, as `deployd serve` reads them). `inspect` and `import` run
on the customer's side and never touch the network.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from deployd.cli import Subparsers
from deployd.cli.agent_console import DEFAULT_CACHE_DIR
from deployd.cli.remote import SERVER_ENV, client_from
from deployd.client import ClientConfig, Poller, find_license, load_trusted_keys
from deployd.client.cache import atomic_write
from deployd.client.licensing import unverified_claims
from deployd.errors import ConfigError
from deployd.licensing.tokens import parse_duration
from deployd.offline.archive import read_file
from deployd.offline.errors import BundleRefusedError
from deployd.offline.export import ExportOrder, export_bundle
from deployd.offline.manifest import Manifest
from deployd.offline.reading import open_bundle, read_members, unverified_manifest
from deployd.server.settings import settings_from_env

EXIT_OK, EXIT_REFUSED = 0, 1


def register(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "bundle",
        help="offline bundles for air-gapped installs: export, inspect, import",
        description="An offline bundle is one signed file holding, for one license, the signed"
        " specs it would be served, the channel's release list, the license and the keys, and"
        " optionally chart archives. See docs/air-gap.md.",
    )
    actions = parser.add_subparsers(dest="bundle_action", metavar="ACTION", required=True)
    _register_export(actions)
    _register_inspect(actions)
    _register_import(actions)


def _register_export(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = actions.add_parser(
        "export",
        help="make an offline bundle for one license (vendor side)",
        description="Write the offline bundle of one license: the specs of its channel it would"
        " be served (the newest release rolled out to it and every required release on the"
        " way), or of the releases named, signed with the server's key.",
    )
    export.add_argument("--license", required=True, metavar="FILE", help="the license file")
    export.add_argument("--channel", metavar="NAME", help="the channel (default: the license's)")
    export.add_argument(
        "--release",
        dest="releases",
        action="append",
        default=[],
        metavar="ID",
        help="bundle this release (repeatable) instead of the channel's selection",
    )
    export.add_argument(
        "--releases-since",
        metavar="ID",
        help="the release the site runs: leave out what it needs no more",
    )
    export.add_argument(
        "--include-charts",
        action="store_true",
        help="add the archives of local-path charts, read under --chart-root (with --redis-url)",
    )
    export.add_argument(
        "--chart-root", metavar="DIR", default=".", help="where chart paths start (default .)"
    )
    export.add_argument(
        "--expires-in", default="30d", metavar="DURATION", help="like 90d (default 30d)"
    )
    export.add_argument("--out", required=True, metavar="FILE", help="where to write the bundle")
    export.add_argument(
        "--server",
        metavar="URL",
        help=f"export through this deployd server (default: ${SERVER_ENV})",
    )
    export.add_argument("--token", metavar="TOKEN", help="publisher token for --server")
    export.add_argument(
        "--redis-url", metavar="URL", help="export from the servers' Redis (default: $REDIS_URL)"
    )
    export.set_defaults(func=export_command)


def _register_inspect(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    inspect = actions.add_parser(
        "inspect",
        help="print what an offline bundle holds and whether it verifies",
        description="Print the bundle's manifest. With --trust-key, also check it as an agent"
        " would (signatures, digests, expiry; and the license with --license-file); exits 1"
        " when it does not verify.",
    )
    inspect.add_argument("file", metavar="FILE")
    _client_arguments(inspect, trust_required=False)
    inspect.set_defaults(func=inspect_command)


def _register_import(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    imported = actions.add_parser(
        "import",
        help="verify an offline bundle and keep it in the agent's cache (customer side)",
        description="Check the bundle exactly as `deployd agent --bundle` does (pinned keys,"
        " license, expiry, rollback floors, the release to step to) and, only if it passes,"
        " copy it to CACHE_DIR/offline-bundle.tar and its charts to CACHE_DIR/charts/."
        " Applies nothing; an agent running with --bundle CACHE_DIR/offline-bundle.tar picks it"
        " up at its next poll.",
    )
    imported.add_argument("file", metavar="FILE")
    _client_arguments(imported, trust_required=True)
    imported.add_argument(
        "--release", metavar="ID", help="the release the agent pins, if it pins one"
    )
    imported.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=DEFAULT_CACHE_DIR,
        help=f"the agent's cache directory (default {DEFAULT_CACHE_DIR})",
    )
    imported.set_defaults(func=import_command)


def _client_arguments(parser: argparse.ArgumentParser, *, trust_required: bool) -> None:
    parser.add_argument(
        "--trust-key",
        metavar="FILE",
        action="append",
        required=trust_required,
        help="trusted spec-signing key (PEM or JWKS), as for `deployd agent`; repeatable",
    )
    parser.add_argument(
        "--license-file", metavar="FILE", help="the agent's license (else DEPLOYD_LICENSE)"
    )
    parser.add_argument("--channel", help="the channel the agent follows (default: the license's)")


# --- export ------------------------------------------------------------------------------------


def export_command(args: argparse.Namespace) -> int:
    license = find_license(license_file=args.license, environ={})
    assert license is not None
    order = ExportOrder(
        license=license.value,
        channel=args.channel,
        releases=tuple(args.releases),
        releases_since=args.releases_since,
        expires_in=parse_duration(args.expires_in).total_seconds(),
    )
    if args.server and args.redis_url:
        raise ConfigError("give --server or --redis-url, not both")
    server = args.server or (None if args.redis_url else os.environ.get(SERVER_ENV) or None)
    data = _export_remote(server, args, order) if server else _export_from_store(args, order)
    out = Path(args.out)
    atomic_write(out, data)  # mode 0600: it holds the license
    manifest = unverified_manifest(read_members(data, max_body_bytes=len(data)))
    print(f"wrote {out} ({len(data)} bytes)")
    _print_manifest(manifest)
    return EXIT_OK


def _export_remote(server: str, args: argparse.Namespace, order: ExportOrder) -> bytes:
    if args.include_charts:
        raise ConfigError(
            "--include-charts reads the charts on this machine: export with --redis-url"
        )
    client = client_from(server, args.token)
    try:
        return client.export_bundle(order)
    finally:
        client.close()


def _export_from_store(args: argparse.Namespace, order: ExportOrder) -> bytes:
    from deployd.offline.charts import chart_archives_under
    from deployd.server.services import build_services
    from deployd.store import open_store

    overrides = {"redis_url": args.redis_url} if args.redis_url else {}
    settings = settings_from_env(**overrides)
    if settings.redis_url is None:
        raise ConfigError(
            "say where to export from: --server URL with a publisher token, or the servers'"
            " Redis with --redis-url or REDIS_URL (and DEPLOYD_SIGNING_KEY, DEPLOYD_KEYS_DIR as"
            " the servers have them)"
        )
    services = build_services(settings, open_store(settings))
    archives = chart_archives_under(Path(args.chart_root)) if args.include_charts else None
    return export_bundle(services, order, now=time.time(), chart_archives=archives).data


# --- inspect and import ------------------------------------------------------------------------


def inspect_command(args: argparse.Namespace) -> int:
    path = Path(args.file)
    data = read_file(path)
    manifest = unverified_manifest(read_members(data, max_body_bytes=len(data)))
    print(f"offline bundle {path} ({len(data)} bytes)")
    _print_manifest(manifest)
    if not args.trust_key:
        print("verified: not checked (give --trust-key to check it as an agent would)")
        return EXIT_OK
    license = find_license(license_file=args.license_file)
    subject = unverified_claims(license.value).get("sub") if license is not None else None
    try:
        opened = open_bundle(
            data,
            trusted_keys=load_trusted_keys(args.trust_key),
            license_subject=subject if isinstance(subject, str) else None,
            expected_channel=args.channel,
            now=time.time(),
            max_body_bytes=ClientConfig.max_body_bytes,
        )
    except BundleRefusedError as e:
        print(f"verified: NO ({e.reason}): {e.message}")
        return EXIT_REFUSED
    keys = sorted({spec.key_id for spec in opened.specs.values()})
    whose = f", for this license's customer {subject}" if subject else ""
    print(
        f"verified: yes: manifest and {len(opened.specs)} specs signed by {', '.join(keys)}{whose}"
    )
    return EXIT_OK


def import_command(args: argparse.Namespace) -> int:
    path = Path(args.file)
    license = find_license(license_file=args.license_file)
    config = ClientConfig(
        offline_bundle=path,
        license=license.value if license else None,
        channel=args.channel,
        release=args.release,
        trusted_keys=load_trusted_keys(args.trust_key),
        cache_dir=Path(args.cache_dir),
    )
    data = read_file(path)
    with Poller(config) as poller:
        now = time.time()
        opened = poller.open_bundle(data, now)
        spec = poller.bundle_spec(data, now)
        written = poller.cache.save_offline_bundle(data, opened.charts())
        running = poller.current_version
    manifest = opened.manifest
    print(
        f"imported the offline bundle for customer {manifest.subject} (channel"
        f" {manifest.channel}, sequence {manifest.sequence}, expires {manifest.expires})"
    )
    for written_path in written:
        print(f"  wrote {written_path}")
    step = f"from {running}" if running else "on a first install"
    print(f"next release to apply {step}: {spec.release}")
    return EXIT_OK


def _print_manifest(manifest: Manifest) -> None:
    print(
        f"  for customer {manifest.subject} (license {manifest.license_id}),"
        f" channel {manifest.channel}, sequence {manifest.sequence}"
    )
    print(f"  made {manifest.created_at}, expires {manifest.expires}")
    specs = [f"{s.release}{' (required)' if s.required else ''}" for s in manifest.specs]
    print(f"  specs: {', '.join(specs)}")
    print("  releases of the channel:")
    for release in manifest.releases:
        flags = [
            flag
            for flag, on in (
                ("required", release.get("required")),
                ("in bundle", release.get("inBundle")),
            )
            if on
        ]
        notes = str(release.get("notes") or "")
        print(f"    {str(release.get('version')):<12} {', '.join(flags):<21} {notes}".rstrip())
    print("  charts:")
    for chart in manifest.charts:
        found = chart.get("chart")
        named: dict[str, Any] = found if isinstance(found, dict) else {}
        where = named.get("url") or named.get("path") or "?"
        what = " ".join(str(named[k]) for k in ("name", "version") if named.get(k))
        digest = chart.get("digest") or "no digest known"
        included = f", archive {chart['file']}" if chart.get("file") else ""
        print(f"    {str(chart.get('release')):<12} {where} {what} ({digest}{included})")
