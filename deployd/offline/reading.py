"""Opening an offline bundle on the agent's side: every check before anything is used.

`open_bundle` refuses (BundleRefusedError, one reason and one message) unless, in this order:

1. the file is a tar within the bounds of deployd.offline.archive (size, member count, plain
   names, regular files only);
2. it has a manifest and its signature, and the signature verifies against the agent's pinned
   keys with `deployd.specs.signing.verify_signature`, the function that checks every spec;
3. the manifest is one, every member it lists is there (a truncated file is missing some),
   nothing else is, and each member's SHA-256 is the one the signed manifest gives (tampering);
4. the bundle is for the agent's license subject, and has not expired;
5. every spec in it passes `deployd.client.verify.verify_spec` (signature, shape, channel,
   expiry) and is the release and sequence the manifest says.

The spec to apply is then chosen with the server's stepping rule
(`deployd.channels.selection.next_step`), from the release the agent runs; the poller checks it
once more against its rollback floors (`verify_spec` with `floors`) before it is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from deployd.channels.selection import next_step, version_or_none
from deployd.client.cache import parse_bundle
from deployd.client.errors import InputError, SpecRefusedError
from deployd.client.verify import VerifiedSpec, verify_spec
from deployd.offline.archive import read_archive
from deployd.offline.errors import (
    BAD_MANIFEST,
    BAD_SPEC,
    EXPIRED,
    INCOMPLETE,
    NO_SPEC,
    TAMPERED,
    UNSAFE_MEMBER,
    WRONG_LICENSE,
    BundleRefusedError,
)
from deployd.offline.manifest import (
    JWKS_MEMBER,
    LICENSE_MEMBER,
    MANIFEST_MEMBER,
    MAX_JWKS_BYTES,
    MAX_LICENSE_MEMBER_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_SIGNATURE_BYTES,
    SIGNATURE_MEMBER,
    BundledSpec,
    Manifest,
    sha256_hex,
)
from deployd.specs.signing import SignatureError, parse_signature_header, verify_signature

# A chart archive may be this large; every other member has a tighter limit of its own.
MAX_CHART_BYTES = 64 * 1024 * 1024
_SPEC_OVERHEAD_BYTES = 65_536


@dataclass(frozen=True)
class OpenedBundle:
    """A bundle that passed every check of `open_bundle`; its specs verified (floors aside)."""

    manifest: Manifest
    specs: Mapping[str, VerifiedSpec] = field(repr=False)  # by release
    members: Mapping[str, bytes] = field(repr=False)

    def choose(self, *, current_version: str | None, pinned_release: str | None) -> VerifiedSpec:
        """The spec to apply: the pinned release's, else the next step from `current_version`
        (the lowest required release above it, else the newest); BundleRefusedError when the
        bundle has no spec of the pinned release."""
        if pinned_release is not None:
            wanted = version_or_none(pinned_release)
            for entry in self.manifest.specs:
                if entry.release == pinned_release or entry.semver == wanted:
                    return self.specs[entry.release]
            raise BundleRefusedError(
                NO_SPEC, f"the bundle holds no spec of the pinned release {pinned_release!r}"
            )
        step = next_step(self.manifest.specs, version_or_none(current_version))
        return self.specs[step.release]

    def charts(self) -> dict[str, bytes]:
        """The chart archives it carries, by release."""
        found = {}
        for entry in self.manifest.charts:
            member, release = entry.get("file"), entry.get("release")
            if isinstance(member, str) and isinstance(release, str) and member in self.members:
                found[release] = self.members[member]
        return found


def member_limits(max_body_bytes: int) -> tuple[dict[str, int], int]:
    """(limits of the named members, the limit of any other) for `read_archive`."""
    named = {
        MANIFEST_MEMBER: MAX_MANIFEST_BYTES,
        SIGNATURE_MEMBER: MAX_SIGNATURE_BYTES,
        LICENSE_MEMBER: MAX_LICENSE_MEMBER_BYTES,
        JWKS_MEMBER: MAX_JWKS_BYTES,
    }
    return named, max(MAX_CHART_BYTES, 2 * max_body_bytes + _SPEC_OVERHEAD_BYTES)


def read_members(data: bytes, *, max_body_bytes: int) -> dict[str, bytes]:
    """The bundle's members, within the archive's bounds (nothing verified yet)."""
    named, other = member_limits(max_body_bytes)
    return read_archive(data, member_limits=named, default_limit=other)


def unverified_manifest(members: Mapping[str, bytes]) -> Manifest:
    """The manifest as written, NOT verified: for `deployd bundle inspect` to show."""
    return Manifest.parse(_member(members, MANIFEST_MEMBER))


def open_bundle(
    data: bytes,
    *,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    license_subject: str | None,
    expected_channel: str | None,
    now: float,
    max_body_bytes: int,
) -> OpenedBundle:
    """The bundle in `data` once every check passed (see the module); BundleRefusedError.

    `license_subject` None skips the license check (only `deployd bundle inspect` does that);
    `expected_channel` None expects the manifest's channel. Each step is a function of its own,
    so that `deployd verify --bundle` can report them one by one.
    """
    members = read_members(data, max_body_bytes=max_body_bytes)
    manifest = verified_manifest(members, trusted_keys)
    if license_subject is not None:
        check_subject(manifest, license_subject)
    check_not_expired(manifest, now)
    specs = verified_specs(
        manifest,
        members,
        channel=expected_channel or manifest.channel,
        now=now,
        trusted_keys=trusted_keys,
        max_body_bytes=max_body_bytes,
    )
    return OpenedBundle(manifest, specs, members)


def verified_manifest(
    members: Mapping[str, bytes], trusted_keys: Mapping[str, Ed25519PublicKey]
) -> Manifest:
    """Steps 2 and 3: the manifest, its signature verified against `trusted_keys`, with every
    member it lists there, unchanged, and nothing else."""
    manifest_bytes = _member(members, MANIFEST_MEMBER)
    signature = manifest_signature(members)
    try:
        verify_signature(signature, manifest_bytes, trusted_keys)
    except SignatureError as e:
        raise BundleRefusedError(BAD_MANIFEST, _signature_problem(e, signature)) from e
    manifest = Manifest.parse(manifest_bytes)
    _check_files(manifest, members)
    return manifest


def manifest_signature(members: Mapping[str, bytes]) -> str:
    """The manifest's signature header value, as the bundle holds it (not verified)."""
    return _member(members, SIGNATURE_MEMBER).decode("ascii", "replace").strip()


def check_subject(manifest: Manifest, license_subject: str) -> None:
    """Step 4: the bundle is for the customer of the agent's license."""
    if manifest.subject != license_subject:
        raise BundleRefusedError(
            WRONG_LICENSE,
            f"the bundle is for customer {manifest.subject!r}, not for this license's"
            f" {license_subject!r}",
        )


def check_not_expired(manifest: Manifest, now: float) -> None:
    """Step 4: the bundle has not expired."""
    if now >= manifest.expires_at():
        raise BundleRefusedError(
            EXPIRED, f"the bundle expired at {manifest.expires}: ask the vendor for a new one"
        )


def verified_specs(
    manifest: Manifest,
    members: Mapping[str, bytes],
    *,
    channel: str,
    now: float,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    max_body_bytes: int,
) -> dict[str, VerifiedSpec]:
    """Step 5: every spec the manifest lists, verified for `channel` (by release)."""
    return {
        entry.release: _verified_spec(
            members[entry.member],
            entry,
            manifest.sequence,
            channel=channel,
            now=now,
            trusted_keys=trusted_keys,
            max_body_bytes=max_body_bytes,
        )
        for entry in manifest.specs
    }


def _signature_problem(error: SignatureError, header: str) -> str:
    if error.reason == "unknown_key":
        kid = parse_signature_header(header)[0][:64]
        return f"the manifest is signed by key id {kid!r}, which is not pinned (--trust-key)"
    if error.reason == "bad_signature":
        return (
            "the manifest's signature does not verify (it was changed, or another key signed"
            " it under a pinned key id)"
        )
    return f"the manifest's signature is missing or malformed: {error}"


def _member(members: Mapping[str, bytes], name: str) -> bytes:
    data = members.get(name)
    if data is None:
        raise BundleRefusedError(INCOMPLETE, f"the bundle has no {name} (truncated, or no bundle)")
    return data


def _check_files(manifest: Manifest, members: Mapping[str, bytes]) -> None:
    """Every listed member there with its digest, and no member the manifest does not list."""
    listed = set(manifest.files) | {MANIFEST_MEMBER, SIGNATURE_MEMBER}
    missing = sorted(set(manifest.files) - set(members))
    if missing:
        raise BundleRefusedError(
            INCOMPLETE,
            f"the bundle lacks {', '.join(missing[:5])} (a truncated or incomplete file)",
        )
    extra = sorted(set(members) - listed)
    if extra:
        raise BundleRefusedError(
            UNSAFE_MEMBER, f"the bundle holds {extra[0]!r}, which the manifest does not list"
        )
    for name, digest in manifest.files.items():
        if sha256_hex(members[name]) != digest:
            raise BundleRefusedError(
                TAMPERED, f"{name} is not the file the signed manifest names (changed)"
            )
    for entry in manifest.specs:
        if entry.member not in manifest.files:
            raise BundleRefusedError(
                BAD_MANIFEST, f"the manifest lists spec {entry.member} without its digest"
            )


def _verified_spec(
    data: bytes,
    entry: BundledSpec,
    sequence: int,
    *,
    channel: str,
    now: float,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    max_body_bytes: int,
) -> VerifiedSpec:
    """The spec in `data` if it verifies and is the release and sequence the manifest says."""
    try:
        stored = parse_bundle(data, max_body_bytes=max_body_bytes, source=entry.member)
        spec = verify_spec(
            stored.body,
            stored.signature,
            trusted_keys=trusted_keys,
            now=now,
            expected_channel=channel,
        )
    except InputError as e:
        raise BundleRefusedError(BAD_SPEC, e.message) from e
    except SpecRefusedError as e:
        raise BundleRefusedError(BAD_SPEC, f"the spec of release {entry.release}: {e}") from e
    if spec.release != entry.release or spec.sequence != sequence:
        raise BundleRefusedError(
            BAD_SPEC,
            f"{entry.member} holds release {spec.release} at sequence {spec.sequence}, not what"
            f" the manifest says (release {entry.release}, sequence {sequence})",
        )
    return spec
