"""Making an offline bundle on the server side: `POST /api/v1/bundles` and `deployd bundle export`.

The bundle holds what this one license would be served, found by the same steps as the poll
(deployd.api.operator): the license verified (revocation included), the customer record layered
over it (its default channel, the channels it may read, a pinned release), and the channel's
selection (`deployd.channels.selection.served_releases`: the newest release rolled out to the
customer and every required release on the way, halted releases left out). Each spec is
rendered and signed by `deployd.specs.rendering.render_spec` with the server's signing key, as
the poll's are: only `issuedAt` (the moment of export) and `expires` (the bundle's) differ from
what a poll would get, since a bundle must outlive the poll's few-day window.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deployd.channels import Channel, Release
from deployd.channels.selection import served_releases, version_or_none
from deployd.customers.layering import default_channel, may_read
from deployd.errors import BadRequestError, LicenseError, NotFoundError
from deployd.licensing.tokens import VerifiedLicense
from deployd.offline.archive import write_archive
from deployd.offline.manifest import (
    JWKS_MEMBER,
    LICENSE_MEMBER,
    MANIFEST_MEMBER,
    SIGNATURE_MEMBER,
    BundledSpec,
    Manifest,
    chart_member,
    sha256_hex,
    spec_file,
    spec_member,
)
from deployd.protocol import rfc3339
from deployd.specs.rendering import render_spec
from deployd.store import CustomerRecord

if TYPE_CHECKING:
    from deployd.server.services import Services

DEFAULT_EXPIRES_IN_SECONDS = 30 * 86_400
MAX_EXPIRES_IN_SECONDS = 366 * 86_400
MAX_RELEASES = 100
_OCI_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")

# The archive of a local-path chart (`chart.path`) of a release, or None when there is none.
ChartArchives = Callable[[Release], bytes | None]


@dataclass(frozen=True)
class ExportOrder:
    """What to export: for `license`, the specs of `channel` (default: the license's) that it
    would be served from `releases_since` on, or of the `releases` named."""

    license: str = field(repr=False)
    channel: str | None = None
    releases: tuple[str, ...] = ()
    releases_since: str | None = None
    expires_in: float = DEFAULT_EXPIRES_IN_SECONDS

    def __post_init__(self) -> None:
        if not 0 < self.expires_in <= MAX_EXPIRES_IN_SECONDS:
            raise BadRequestError(
                f"a bundle expires within 1 s to {MAX_EXPIRES_IN_SECONDS // 86_400} days"
            )
        if len(self.releases) > MAX_RELEASES:
            raise BadRequestError(f"name at most {MAX_RELEASES} releases")
        if self.releases_since is not None and version_or_none(self.releases_since) is None:
            raise BadRequestError(f"{self.releases_since!r} is not a semantic version")


@dataclass(frozen=True)
class ExportedBundle:
    data: bytes = field(repr=False)
    manifest: Manifest

    @property
    def filename(self) -> str:
        return f"{self.manifest.subject}-{self.manifest.channel}-{self.manifest.sequence}.tar"


def export_bundle(
    deployd: Services,
    order: ExportOrder,
    *,
    now: float,
    chart_archives: ChartArchives | None = None,
) -> ExportedBundle:
    """The offline bundle `order` asks for. LicenseError, NotFoundError or BadRequestError
    (each a JSON error over HTTP) when the license, channel or releases do not allow one."""
    license = deployd.verify_license(order.license)
    record = deployd.customer_record(license.customer)
    name = order.channel or default_channel(record, license)
    if not may_read(record, license, name):
        raise LicenseError("channel_not_allowed", f"this license may not read channel {name!r}")
    found = deployd.state.channel(name)
    if found is None:
        raise NotFoundError(f"no channel named {name!r}", code="unknown_channel")
    sequence, channel = found
    releases = _releases(order, channel, license, record, deployd.state.halted(name))
    expires = min(now + order.expires_in, float(license.expires_at))
    issued_at = float(int(now))
    members: dict[str, bytes] = {
        LICENSE_MEMBER: order.license.encode() + b"\n",
        JWKS_MEMBER: _spec_jwks(deployd.jwks()),
    }
    for release in releases:
        spec = render_spec(
            channel,
            release,
            sequence=sequence,
            signer=deployd.signer,
            window_start=issued_at,
            expires=expires,
        )
        members[spec_member(release.version)] = spec_file(spec.body, spec.signature)
    charts = [_chart_entry(release, chart_archives, members) for release in releases]
    manifest = Manifest(
        subject=license.customer,
        license_id=license.jti,
        channel=name,
        sequence=sequence,
        created_at=rfc3339(issued_at),
        expires=rfc3339(expires),
        specs=tuple(BundledSpec(r.version, r.required, spec_member(r.version)) for r in releases),
        releases=tuple(_release_entry(r, releases) for r in channel.releases),
        charts=tuple(charts),
        files={member: sha256_hex(data) for member, data in members.items()},
    )
    manifest_bytes = manifest.to_bytes()
    members[MANIFEST_MEMBER] = manifest_bytes
    members[SIGNATURE_MEMBER] = deployd.signer.signature_header(manifest_bytes).encode()
    return ExportedBundle(write_archive(members), manifest)


def _releases(
    order: ExportOrder,
    channel: Channel,
    license: VerifiedLicense,
    record: CustomerRecord | None,
    halted: frozenset[str],
) -> list[Release]:
    """The releases to bundle: those named, else the record's pin, else the selection's."""
    if order.releases:
        named = []
        for version in dict.fromkeys(order.releases):
            release = channel.release(version)
            if release is None:
                raise NotFoundError(
                    f"channel {channel.name!r} has no release {version!r}", code="unknown_release"
                )
            named.append(release)
        return sorted(named, key=lambda release: release.semver)
    if record is not None and record.pinned_release is not None:
        pinned = channel.release(record.pinned_release)
        if pinned is not None:
            return [pinned]
    if record is not None and record.hold:
        raise BadRequestError(
            f"customer {license.customer!r} is on hold (it keeps the release it runs): name the"
            " releases to bundle (--release)"
        )
    return served_releases(
        channel, customer=license.customer, since=order.releases_since, halted=halted
    )


def _spec_jwks(jwks: Mapping[str, list[dict[str, str]]]) -> bytes:
    keys = [key for key in jwks["keys"] if key.get("deployd_role") == "spec"]
    return json.dumps({"keys": keys}, indent=1, sort_keys=True).encode()


def _release_entry(release: Release, bundled: list[Release]) -> dict[str, Any]:
    return {
        "version": release.version,
        "required": release.required,
        "notes": release.notes,
        "releasedAt": release.released_at,
        "inBundle": release.version in {r.version for r in bundled},
    }


def _chart_entry(
    release: Release, chart_archives: ChartArchives | None, members: dict[str, bytes]
) -> dict[str, Any]:
    """What the manifest says of a release's chart: the chart as the spec names it, and its
    digest when one is known (an OCI reference's, or the SHA-256 of the archive included)."""
    chart = release.chart
    entry: dict[str, Any] = {"release": release.version, "chart": chart, "digest": None}
    url = chart.get("url")
    if isinstance(url, str):
        match = _OCI_DIGEST.search(url)
        entry["digest"] = match.group(1) if match else None
    archive = chart_archives(release) if chart_archives is not None and chart.get("path") else None
    if archive is not None:
        member = chart_member(release.version)
        members[member] = archive
        entry.update(digest="sha256:" + sha256_hex(archive), file=member)
    return entry
