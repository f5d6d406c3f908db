"""A rollout's health: per release of a channel, the instances on it, their reported outcomes, the
instances still on older releases, the policy in force and whether it is halted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deployd.channels import Channel, Release
from deployd.rollouts.records import OutcomeCounts, RolloutEvent
from deployd.store import Store


@dataclass(frozen=True)
class ReleaseHealth:
    release: Release
    served: int  # instances on this release now
    older: int  # instances on lower releases of the channel
    outcomes: OutcomeCounts
    halt: RolloutEvent | None  # the halt in force, if any

    @property
    def failure_rate(self) -> float:
        reports = self.outcomes.reports
        return self.outcomes.failures / reports if reports else 0.0

    def numbers(self) -> dict[str, Any]:
        """What a halt records and the status shows: counts, rate and the policy."""
        policy = self.release.halt
        return {
            "served": self.served,
            "older": self.older,
            "applied": self.outcomes.applied,
            "failed": self.outcomes.failed,
            "rolledBack": self.outcomes.rolled_back,
            "failureRate": round(self.failure_rate, 4),
            "policy": policy.to_dict() if policy is not None else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "release": self.release.version,
            **self.numbers(),
            "halted": self.halt is not None,
            "halt": self.halt.to_dict() if self.halt is not None else None,
        }


def channel_health(store: Store, channel: Channel) -> list[ReleaseHealth]:
    """Every release of `channel`, newest first, with its health (four store reads)."""
    served = store.release_counts(channel.name)
    outcomes = store.outcome_counts(channel.name)
    halts = store.halts().get(channel.name, {})
    found = []
    for release in channel.releases:
        older = sum(n for version, n in served.items() if _below(channel, version, release))
        found.append(
            ReleaseHealth(
                release=release,
                served=served.get(release.version, 0),
                older=older,
                outcomes=outcomes.get(release.version, OutcomeCounts()),
                halt=halts.get(release.version),
            )
        )
    return list(reversed(found))


def _below(channel: Channel, version: str, release: Release) -> bool:
    other = channel.release(version)
    return other is not None and other.semver < release.semver
