"""Which release of a channel a license gets: staged rollouts and required stepping stones.

Pure functions of the channel, the license id and the version the client reports, so every worker
and replica answers the same caller the same way.
"""

from __future__ import annotations

import hashlib

from deployd.channels import Channel, Release
from deployd.errors import NotFoundError
from deployd.semver import Version


def rollout_bucket(license_id: str, version: str) -> int:
    """The license's bucket (0..99) for one release: stable across processes, hosts and restarts.

    Each release draws its own buckets, so the licenses that get an early rollout of one release
    are not always the same ones.
    """
    digest = hashlib.sha256(f"{license_id}\0{version}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def admits(release: Release, license_id: str | None) -> bool:
    """Whether `release` is rolled out to this license (bucket below the rollout percentage).

    A license admitted at some rollout stays admitted at every higher one. Callers without a
    license id only get releases at 100%.
    """
    if release.rollout >= 100:
        return True
    if license_id is None:
        return False
    return rollout_bucket(license_id, release.version) < release.rollout


def select_release(
    channel: Channel, *, license_id: str | None, current_version: str | None
) -> Release:
    """The release to serve: the newest admitted one, after any required stepping stone.

    When the client reports the version it runs (`current_version`), the lowest admitted
    `required` release above it and below the newest admitted release is served first, so a
    client steps through every required floor. A `current_version` that is not semver is ignored.
    Raises NotFoundError (code ``no_release``) when no release is admitted.
    """
    admitted = [release for release in channel.releases if admits(release, license_id)]
    if not admitted:
        raise NotFoundError(
            f"no release of channel {channel.name!r} is rolled out to this license yet",
            code="no_release",
        )
    newest = admitted[-1]
    current = _parse_or_none(current_version)
    if current is None:
        return newest
    floors = (r for r in admitted if r.required and current < r.semver < newest.semver)
    return next(floors, newest)


def _parse_or_none(version: str | None) -> Version | None:
    if version is None:
        return None
    try:
        return Version.parse(version)
    except ValueError:
        return None
