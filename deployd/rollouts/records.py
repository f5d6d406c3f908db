"""What rollouts keep: one instance's report, a release's outcome counts, a halt or a resume."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

APPLIED, FAILED, ROLLED_BACK = "applied", "failed", "rolled_back"
OUTCOMES = (APPLIED, FAILED, ROLLED_BACK)
HALT, RESUME = "halt", "resume"


@dataclass(frozen=True)
class Report:
    """One instance's outcome of one reconcile, checked and attributed to a license subject."""

    channel: str
    release: str
    instance: str
    outcome: str
    message: str
    at: str  # RFC 3339, UTC
    subject: str


@dataclass(frozen=True)
class OutcomeCounts:
    """Distinct instances by their latest outcome for one release."""

    applied: int = 0
    failed: int = 0
    rolled_back: int = 0

    @classmethod
    def of(cls, counts: dict[str, int]) -> OutcomeCounts:
        return cls(**{o: max(0, int(counts.get(o, 0))) for o in OUTCOMES})

    @property
    def reports(self) -> int:
        """Instances that reported on the release."""
        return self.applied + self.failed + self.rolled_back

    @property
    def failures(self) -> int:
        """Instances whose latest report is a failure or a rollback."""
        return self.failed + self.rolled_back


@dataclass(frozen=True)
class RolloutEvent:
    """A halt or a resume of one release, as kept in the channel's rollout log."""

    kind: str  # HALT or RESUME
    channel: str
    release: str
    at: str
    by: str  # "policy" for an automatic halt, else the publisher's name
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)
    sequence: int = 0  # the channel's sequence when it happened: it follows that publish

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> RolloutEvent:
        data = json.loads(raw)
        return cls(
            kind=data["kind"],
            channel=data["channel"],
            release=data["release"],
            at=data["at"],
            by=data["by"],
            reason=data["reason"],
            numbers=dict(data.get("numbers") or {}),
            sequence=int(data.get("sequence", 0)),
        )

    def to_dict(self) -> dict[str, Any]:
        """As the history and rollout endpoints show it."""
        return {
            "event": self.kind,
            "release": self.release,
            "at": self.at,
            "by": self.by,
            "reason": self.reason,
            "numbers": self.numbers,
            "afterSequence": self.sequence,
        }
