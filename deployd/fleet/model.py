"""What the store keeps about an instance, and the check-ins that update it."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class CheckIn:
    """One poll, as the recorder batches it (the latest poll of an instance wins)."""

    key: str  # the instance key (deployd.fleet.instances.instance_key)
    subject: str  # the license's `sub`
    agent_id: str | None  # the Deployd-Instance-Id the agent sent, None when derived
    channel: str
    served: str  # the release this poll was served
    seen: float  # seconds since the epoch
    agent_version: str | None = None
    kubernetes_version: str | None = None
    user_agent: str | None = None
    max_instances: int | None = None  # the license's cap, settled again at flush time


@dataclass(frozen=True)
class InstanceRecord:
    """An instance as the store keeps it (JSON, camelCase on the wire)."""

    key: str
    subject: str
    agent_id: str | None
    channel: str
    served: str | None
    reported: str | None  # the release the instance reported running (rollout reports)
    first_seen: float
    last_seen: float
    agent_version: str | None = None
    kubernetes_version: str | None = None
    user_agent: str | None = None

    @property
    def running(self) -> str | None:
        """The release it runs, as far as the server knows: reported, else last served."""
        return self.reported or self.served

    def to_json(self) -> str:
        return json.dumps({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_json(cls, raw: str | bytes) -> InstanceRecord:
        data = json.loads(raw)
        get = data.get
        return cls(*(get(name) for name in _RECORD_FIELDS))

    def merged(self, check_in: CheckIn) -> InstanceRecord:
        """This record after `check_in`."""
        return InstanceRecord(
            key=self.key,
            subject=check_in.subject,
            agent_id=check_in.agent_id,
            channel=check_in.channel,
            served=check_in.served,
            reported=self.reported,
            first_seen=self.first_seen,
            last_seen=max(self.last_seen, check_in.seen),
            agent_version=check_in.agent_version,
            kubernetes_version=check_in.kubernetes_version,
            user_agent=check_in.user_agent,
        )

    @classmethod
    def first(cls, check_in: CheckIn) -> InstanceRecord:
        return cls(
            key=check_in.key,
            subject=check_in.subject,
            agent_id=check_in.agent_id,
            channel=check_in.channel,
            served=check_in.served,
            reported=None,
            first_seen=check_in.seen,
            last_seen=check_in.seen,
            agent_version=check_in.agent_version,
            kubernetes_version=check_in.kubernetes_version,
            user_agent=check_in.user_agent,
        )

    def change(self, *, removed: bool = False) -> InstanceChange:
        """This record as a change-feed entry."""
        return InstanceChange(
            self.key, self.subject, self.served, self.reported, self.last_seen, removed=removed
        )

    def to_api(self) -> dict[str, Any]:
        """The record as `GET /api/v1/fleet` shows it."""
        from deployd.protocol import rfc3339

        return {
            "instance": self.key,
            "agentInstanceId": self.agent_id,
            "customer": self.subject,
            "channel": self.channel,
            "servedRelease": self.served,
            "reportedRelease": self.reported,
            "firstSeen": rfc3339(self.first_seen),
            "lastSeen": rfc3339(self.last_seen),
            "agentVersion": self.agent_version,
            "kubernetesVersion": self.kubernetes_version,
            "userAgent": self.user_agent,
        }


_RECORD_FIELDS = tuple(f.name for f in fields(InstanceRecord))


@dataclass(frozen=True)
class FlushOutcome:
    """What the store did with a batch of check-ins."""

    new: list[str]  # instance keys seen for the first time
    refused: list[str]  # new instances over their license's maxInstances: not recorded


@dataclass(frozen=True)
class InstanceChange:
    """One entry of the change feed: an instance's state, or its removal (expired)."""

    key: str
    subject: str
    served: str | None
    reported: str | None
    last_seen: float
    removed: bool = False


@dataclass(frozen=True)
class FeedRead:
    """Changes read from the feed after a position, and the position to read from next.
    `complete` is False when the feed was trimmed past the position asked for: entries were lost,
    and the reader must reload from a snapshot."""

    changes: list[InstanceChange]
    position: str
    complete: bool = True


@dataclass(frozen=True)
class Snapshot:
    """One chunk of every instance, for a worker (re)loading its view."""

    changes: list[InstanceChange]
    cursor: str | None  # None: that was the last chunk
    position: str  # the feed position when the first chunk was read: replay from there
