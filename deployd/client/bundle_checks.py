"""The checks of `deployd verify --bundle FILE`: an offline bundle checked, step by step, as the
agent checks it (deployd.offline.reading), then the release the agent would apply from it, with
the agent's own stepping code (`Poller.bundle_spec`); then the local checks
(`deployd.client.local_checks`). Nothing here touches the network."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from deployd.client import local_checks
from deployd.client.cache import APPLIED_FILE, SEQUENCES_FILE, SPEC_FILE
from deployd.client.checkup import Check, Outcome, failed, passed, register_check_source
from deployd.client.config import ClientConfig
from deployd.client.errors import SpecRefusedError
from deployd.client.licensing import unverified_claims
from deployd.client.poller import Poller
from deployd.client.site import Checkup
from deployd.client.verify import BAD_SIGNATURE, DOWNGRADE, ROLLBACK, UNKNOWN_KEY, WRONG_CHANNEL
from deployd.offline.archive import read_file
from deployd.offline.errors import BAD_MANIFEST, NO_SPEC, BundleRefusedError
from deployd.offline.reading import (
    check_not_expired,
    check_subject,
    manifest_signature,
    read_members,
    verified_manifest,
    verified_specs,
)
from deployd.specs.signing import SignatureError, parse_signature_header

MAX_BODY_BYTES = ClientConfig.max_body_bytes
TRUST_HINT = (
    "trust the vendor's spec-signing key: --trust-key FILE (the PEM file, or the JWKS the server"
    " publishes, checked out of band)"
)
# What `Poller` reads from the cache directory to know where the agent stands.
AGENT_MEMORY = (SPEC_FILE, SEQUENCES_FILE, APPLIED_FILE)
NEW_BUNDLE_HINT = "ask the vendor for a new bundle (deployd bundle export)"


def _refused(error: BundleRefusedError, hint: str) -> Outcome:
    return failed(error.message, hint, refusal=error.reason)


def _bundle_path(checkup: Checkup) -> Path:
    assert checkup.site.options.bundle is not None
    return checkup.site.options.bundle


def check_bundle_file(checkup: Checkup) -> Outcome:
    """The file can be read and is a tar within the archive's bounds (nothing verified yet)."""
    path = _bundle_path(checkup)
    try:
        data = read_file(path)
        members = read_members(data, max_body_bytes=MAX_BODY_BYTES)
    except BundleRefusedError as e:
        return _refused(
            e,
            "give the offline bundle as exported (deployd bundle export); if it was cut short"
            " or damaged on the way, copy it again",
        )
    checkup.bundle, checkup.members = data, members
    return passed(
        f"{path}: a tar of {len(members)} files, {len(data)} bytes",
        size=len(data),
        files=len(members),
    )


def check_manifest(checkup: Checkup) -> Outcome:
    """The manifest's signature against the trusted keys, and every file it lists unchanged."""
    try:
        manifest = verified_manifest(checkup.members, checkup.site.trusted_keys)
    except BundleRefusedError as e:
        return _refused(e, _manifest_hint(e))
    checkup.manifest = manifest
    key_id = parse_signature_header(manifest_signature(checkup.members))[0]
    return passed(
        f"signed by trusted key {key_id}: channel {manifest.channel}, sequence"
        f" {manifest.sequence}, made {manifest.created_at}; {len(manifest.files)} files match"
        " their SHA-256",
        key_id=key_id,
        channel=manifest.channel,
        sequence=manifest.sequence,
        created_at=manifest.created_at,
    )


def _manifest_hint(error: BundleRefusedError) -> str:
    cause = error.__cause__
    if isinstance(cause, SignatureError) and cause.reason == UNKNOWN_KEY:
        return TRUST_HINT
    if isinstance(cause, SignatureError):
        return (
            "the manifest was changed, or another key signed it: get the bundle again from the"
            " vendor, and check that --trust-key is the vendor's key"
        )
    if error.reason == BAD_MANIFEST:
        return "this is no bundle this agent can read: tell the vendor"
    return "the file was changed or cut short on the way: copy it again from the vendor's file"


def check_bundle_license(checkup: Checkup) -> Outcome:
    """Who the bundle is for: the subject of the agent's license."""
    manifest = checkup.manifest
    assert manifest is not None
    found = checkup.site.license
    if found is None:
        return failed(
            f"the bundle is for customer {manifest.subject!r}; no license to check it against",
            local_checks.LICENSE_HINT + " (an offline bundle is bound to one license)",
        )
    subject = unverified_claims(found.value).get("sub")
    try:
        check_subject(manifest, subject if isinstance(subject, str) else "")
    except BundleRefusedError as e:
        return _refused(e, "ask the vendor for a bundle exported for this license")
    return passed(
        f"for customer {manifest.subject} (license {manifest.license_id}), the customer of the"
        f" license from the {found.source}",
        customer=manifest.subject,
        license_id=manifest.license_id,
    )


def check_bundle_expiry(checkup: Checkup) -> Outcome:
    manifest = checkup.manifest
    assert manifest is not None
    now = time.time()
    days = int((manifest.expires_at() - now) // local_checks.DAY_SECONDS)
    try:
        check_not_expired(manifest, now)
    except BundleRefusedError as e:
        return failed(e.message, NEW_BUNDLE_HINT, refusal=e.reason, expires=manifest.expires)
    return passed(
        f"expires {manifest.expires} (in {days} days)", expires=manifest.expires, days_left=days
    )


def check_bundle_specs(checkup: Checkup) -> Outcome:
    """Every spec in the bundle: its signature, its channel, the release the manifest says."""
    manifest = checkup.manifest
    assert manifest is not None
    channel = checkup.site.expected_channel
    try:
        specs = verified_specs(
            manifest,
            checkup.members,
            channel=channel,
            now=time.time(),
            trusted_keys=checkup.site.trusted_keys,
            max_body_bytes=MAX_BODY_BYTES,
        )
    except BundleRefusedError as e:
        return _refused(e, _spec_hint(e))
    releases = [f"{s.release}{' (required)' if s.required else ''}" for s in manifest.specs]
    keys = sorted({spec.key_id for spec in specs.values()})
    return passed(
        f"{len(specs)} specs of channel {channel}: {', '.join(releases)}; signed by trusted key"
        f" {', '.join(keys)}",
        channel=channel,
        releases=[spec.release for spec in manifest.specs],
        key_ids=keys,
    )


def _spec_hint(error: BundleRefusedError) -> str:
    cause = error.__cause__
    reason = cause.reason if isinstance(cause, SpecRefusedError) else None
    if reason == WRONG_CHANNEL:
        return "follow the bundle's channel (--channel), or ask for a bundle of this one"
    if reason in (UNKNOWN_KEY, BAD_SIGNATURE):
        return TRUST_HINT
    return "the bundle's specs are not valid: tell the vendor"


def check_next_release(checkup: Checkup) -> Outcome:
    """The release the agent would apply next from this bundle, as `deployd agent --bundle`
    picks it: from the release the cache directory says is applied (else a first install), or
    the pinned one, through the agent's rollback floors. The agent's memory is read from a copy,
    so that nothing in its cache directory changes."""
    cache_dir = checkup.site.options.cache_dir
    if cache_dir is not None and not cache_dir.is_dir():
        return failed(
            f"no cache directory at {cache_dir}",
            "give the agent's --cache-dir, or leave it out to check a first install",
        )
    with tempfile.TemporaryDirectory(prefix="deployd-verify-") as scratch:
        memory = Path(scratch) / "cache"
        if cache_dir is None:
            return _step(checkup, memory, "")
        try:
            _copy_memory(cache_dir, memory)
        except OSError as e:
            return failed(
                f"cannot read the agent's cache directory {cache_dir}: {e.strerror}",
                "run deployd verify as the agent's user",
            )
        return _step(checkup, memory, f"(applied, in {cache_dir})")


def _copy_memory(cache_dir: Path, copy: Path) -> None:
    """The files of the agent's memory (its spec, floors and applied state) copied to `copy`."""
    copy.mkdir(mode=0o700)
    for name in AGENT_MEMORY:
        if (cache_dir / name).exists():
            shutil.copyfile(cache_dir / name, copy / name)


def _step(checkup: Checkup, cache_dir: Path, where: str) -> Outcome:
    site = checkup.site
    assert checkup.bundle is not None and site.license is not None
    config = ClientConfig(
        trusted_keys=site.trusted_keys,
        cache_dir=cache_dir,
        license=site.license.value,
        channel=site.options.channel,
        release=site.options.release,
        offline_bundle=_bundle_path(checkup),
    )
    with Poller(
        config, user_values=site.user_values, custom_resource=site.custom_resource
    ) as poller:
        try:
            spec = poller.bundle_spec(checkup.bundle, time.time())
        except BundleRefusedError as e:
            return _refused(e, _step_hint(e))
        current, pinned = poller.current_version, poller.pinned_release
    checkup.spec = spec
    if pinned is not None:
        start = f"pinned to {pinned}"
    elif current is not None:
        start = f"from release {current} {where}".rstrip()
    else:
        start = "on a first install"
    return passed(
        f"{start}: the agent would apply release {spec.release} (channel {spec.channel},"
        f" sequence {spec.sequence})",
        current=current,
        pinned=pinned,
        release=spec.release,
        sequence=spec.sequence,
    )


def _step_hint(error: BundleRefusedError) -> str:
    if error.reason in (ROLLBACK, DOWNGRADE):
        return "the agent already runs something newer: ask the vendor for a newer bundle"
    if error.reason == NO_SPEC:
        return "ask for a bundle with the pinned release (deployd bundle export --release ID)"
    return NEW_BUNDLE_HINT


def bundle_checks(checkup: Checkup) -> Sequence[Check]:
    """The checklist of an offline bundle, in order."""
    del checkup  # the same list for every site
    return [
        Check("bundle-file", check_bundle_file, "give the offline bundle file"),
        Check("manifest", check_manifest, TRUST_HINT, needs=("bundle-file",)),
        Check(
            "bundle-license",
            check_bundle_license,
            local_checks.LICENSE_HINT,
            needs=("manifest",),
        ),
        Check("bundle-expiry", check_bundle_expiry, NEW_BUNDLE_HINT, needs=("manifest",)),
        local_checks.license_check(),
        Check(
            "bundle-specs",
            check_bundle_specs,
            "check the trusted keys and the channel",
            needs=("manifest", "bundle-expiry"),
        ),
        Check(
            "next-release",
            check_next_release,
            "check --release, the user values and the cache directory",
            needs=("bundle-license", "bundle-specs"),
        ),
        *local_checks.after_spec_checks("next-release"),
    ]


register_check_source("bundle", bundle_checks)
