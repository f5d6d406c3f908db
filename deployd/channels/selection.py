"""Which release of a channel a license gets: staged rollouts and required stepping stones.

Pure functions of the channel, the customer (the license's `sub`) and the version the client
reports, so every worker and replica answers the same caller the same way. Cohorts are per
customer, never per license: a renewed license (a new `jti`, the same `sub`) keeps every release
its customer had, so a renewal never moves anyone in or out of a rollout.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol, TypeVar

from deployd.channels.model import Channel, Release
from deployd.errors import NotFoundError
from deployd.semver import Version


def rollout_bucket(customer: str, version: str) -> int:
    """The customer's bucket (0..99) for one release: stable across processes, hosts, restarts
    and license renewals.

    Each release draws its own buckets, so the customers that get an early rollout of one release
    are not always the same ones.
    """
    digest = hashlib.sha256(f"{customer}\0{version}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def admits(release: Release, customer: str | None) -> bool:
    """Whether `release` is rolled out to this customer (bucket below the rollout percentage).

    A customer admitted at some rollout stays admitted at every higher one. Callers without a
    license (no customer) only get releases at 100%.
    """
    if release.rollout >= 100:
        return True
    if customer is None:
        return False
    return rollout_bucket(customer, release.version) < release.rollout


def select_release(
    channel: Channel,
    *,
    customer: str | None,
    current_version: str | None,
    halted: frozenset[str] = frozenset(),
) -> Release:
    """The release to serve: the newest admitted one, after any required stepping stone.

    When the client reports the version it runs (`current_version`), the lowest admitted
    `required` release above it and below the newest admitted release is served first, so a
    client steps through every required floor. A `current_version` that is not semver is ignored.
    A `halted` release (by version) admits no new instances: only a caller already running it
    keeps getting it; everyone else is served as if it were not in the channel.
    Raises NotFoundError (code ``no_release``) when no release is admitted.
    """
    current = version_or_none(current_version)
    admitted = [
        release
        for release in channel.releases
        if admits(release, customer) and _open_to(release, halted, current)
    ]
    if not admitted:
        raise NotFoundError(
            f"no release of channel {channel.name!r} is rolled out to this license yet",
            code="no_release",
        )
    return next_step(admitted, current)


class Steppable(Protocol):
    """What the stepping rule reads of a release: a server's `Release`, or an entry of an
    offline bundle (deployd.offline) that an agent steps through on its own."""

    @property
    def semver(self) -> Version: ...

    @property
    def required(self) -> bool: ...


StepT = TypeVar("StepT", bound=Steppable)


def next_step(admitted: Sequence[StepT], current: Version | None) -> StepT:
    """Of `admitted` (not empty, ascending semver order), the one to serve a caller running
    `current`: the lowest `required` one above it and below the newest, else the newest."""
    newest = admitted[-1]
    if current is None:
        return newest
    floors = (r for r in admitted if r.required and current < r.semver < newest.semver)
    return next(floors, newest)


def _open_to(release: Release, halted: frozenset[str], current: Version | None) -> bool:
    """Whether `release` may be served to a caller running `current`: it is not halted, or the
    caller runs it already."""
    if release.version not in halted:
        return True
    return current is not None and current == release.semver


def version_or_none(version: str | None) -> Version | None:
    if version is None:
        return None
    try:
        return Version.parse(version)
    except ValueError:
        return None


# Where a caller with no release of the channel yet starts: below every release.
_BEFORE_EVERY_RELEASE = "0.0.0"


def served_releases(
    channel: Channel,
    *,
    customer: str | None,
    since: str | None = None,
    halted: frozenset[str] = frozenset(),
) -> list[Release]:
    """Every release `select_release` serves this customer, whatever release it runs from
    `since` on (default: from nothing at all), in ascending semver order: the newest admitted
    release and each required one a caller steps through on the way. An offline bundle carries
    these, so an agent that steps through them with `next_step` gets what the server would serve
    it. A halted release is no starting point (only callers already running it are served it).
    Raises NotFoundError (``no_release``) as `select_release` does.
    """
    start = since if since is not None else _BEFORE_EVERY_RELEASE
    floor = version_or_none(start)
    starts: list[str | None] = [None, start] if since is None else [start]
    starts += [
        r.version
        for r in channel.releases
        if (floor is None or r.semver >= floor) and r.version not in halted
    ]
    served = {
        release.version: release
        for release in (
            select_release(channel, customer=customer, current_version=v, halted=halted)
            for v in starts
        )
    }
    return sorted(served.values(), key=lambda release: release.semver)
