"""Halting and resuming releases: by their `halt:` policy after each flush of reports, or by hand.

A halt is its own store state (it survives later publishes until resumed) and moves the store
generation, so every worker's view (deployd.server.view) picks it up in its background refresh
and stops serving the release to instances not already on it (deployd.channels.selection).

Every halt and resume is announced once, to `on_event`: by default it becomes a ``halt`` or
``resume`` event in the event log (deployd.events), with the release and the numbers, whether
the server halted by itself, a publisher did over HTTP or an operator with the CLI on Redis.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from deployd.channels import Channel, channel_from_document
from deployd.errors import NotFoundError
from deployd.events import SERVER_ACTOR, record_event
from deployd.protocol import utc_now
from deployd.rollouts.health import ReleaseHealth, channel_health
from deployd.rollouts.queue import FlushedCounts
from deployd.rollouts.records import HALT, RESUME, OutcomeCounts, RolloutEvent
from deployd.store import Store

logger = logging.getLogger(__name__)

BY_POLICY = "policy"
EventListener = Callable[[RolloutEvent], None]


def event_recorder(store: Store) -> EventListener:
    """The default listener: a ``halt`` or ``resume`` event in `store`'s event log. A reason a
    publisher typed stays in the rollout log (events carry no free text); the policy's own
    reason for an automatic halt is kept."""

    def record(event: RolloutEvent) -> None:
        automatic = event.by == BY_POLICY
        data: dict[str, object] = {"release": event.release, "automatic": automatic}
        if automatic:
            data["reason"] = event.reason
        data.update(event.numbers)
        actor = SERVER_ACTOR if automatic else event.by
        record_event(store, event.kind, channel=event.channel, actor=actor, data=data)

    return record


class Rollouts:
    """Halts and resumes on one store; `find_channel` gives the compiled channel by name (a
    worker passes its in-memory view's, a command reads the store)."""

    def __init__(
        self,
        store: Store,
        *,
        find_channel: Callable[[str], Channel | None] | None = None,
        known_halts: Callable[[str], frozenset[str]] | None = None,
        on_event: EventListener | None = None,
    ) -> None:
        self.store = store
        self.find_channel = find_channel or self._stored_channel
        # The halted versions of a channel as the worker last read them (none: ask the store).
        self.known_halts = known_halts or (lambda name: frozenset())
        self.on_event = on_event or event_recorder(store)
        self.automatic_halts = 0

    def _stored_channel(self, name: str) -> Channel | None:
        record = self.store.get_channel(name)
        if record is None:
            return None
        return channel_from_document(record.document, filename=name)

    def channel(self, name: str) -> Channel:
        channel = self.find_channel(name)
        if channel is None:
            raise NotFoundError(f"no channel named {name!r}", code="unknown_channel")
        return channel

    def health(self, name: str) -> list[ReleaseHealth]:
        return channel_health(self.store, self.channel(name))

    def release_health(self, name: str, version: str) -> ReleaseHealth:
        channel = self.channel(name)
        release = channel.release(version)
        if release is None:
            raise NotFoundError(
                f"channel {name!r} has no release {version!r}", code="unknown_release"
            )
        return next(h for h in channel_health(self.store, channel) if h.release == release)

    def check_policies(self, flushed: FlushedCounts) -> None:
        """After a flush: halt each release whose new counts cross its policy (once)."""
        for (name, version), counts in flushed.items():
            channel = self.find_channel(name)
            release = channel.release(version) if channel is not None else None
            if release is None or release.halt is None or version in self.known_halts(name):
                continue
            if release.halt.crossed(reports=counts.reports, failures=counts.failures):
                self._halt_by_policy(name, version, counts)

    def _halt_by_policy(self, name: str, version: str, counts: OutcomeCounts) -> None:
        health = self.release_health(name, version)
        numbers = health.numbers()
        # The counts of this flush decided; the health read after it may already be newer.
        numbers.update(
            applied=counts.applied,
            failed=counts.failed,
            rolledBack=counts.rolled_back,
            failureRate=round(counts.failures / counts.reports, 4) if counts.reports else 0.0,
        )
        policy = health.release.halt
        reason = (
            f"{counts.failures} of {counts.reports} reporting instances failed or rolled back"
            f" ({policy.describe() if policy else 'no policy'})"
        )
        event = RolloutEvent(
            HALT, name, version, utc_now(), BY_POLICY, reason, numbers, self._sequence(name)
        )
        if self._record(event):
            self.automatic_halts += 1

    def halt(self, name: str, version: str, *, by: str, reason: str = "") -> bool:
        """Halt a release by hand; False when it is halted already."""
        health = self.release_health(name, version)
        event = RolloutEvent(
            HALT,
            name,
            health.release.version,
            utc_now(),
            by,
            reason or "halted by hand",
            health.numbers(),
            self._sequence(name),
        )
        return self._record(event)

    def resume(self, name: str, version: str, *, by: str, reason: str = "") -> bool:
        """Let a halted release admit instances again; False when it was not halted. Its
        reports start over (the numbers at the resume stay in the history), so its policy
        judges what happens after the resume."""
        health = self.release_health(name, version)
        event = RolloutEvent(
            RESUME,
            name,
            health.release.version,
            utc_now(),
            by,
            reason or "resumed by hand",
            health.numbers(),
            self._sequence(name),
        )
        return self._record(event)

    def _sequence(self, name: str) -> int:
        return self.store.sequences().get(name, 0)

    def _record(self, event: RolloutEvent) -> bool:
        store_call = self.store.halt_release if event.kind == HALT else self.store.resume_release
        if not store_call(event):
            return False
        logger.warning(
            "release %s of channel %s %s by %s: %s",
            event.release,
            event.channel,
            "halted" if event.kind == HALT else "resumed",
            event.by,
            event.reason,
        )
        self.on_event(event)
        return True
