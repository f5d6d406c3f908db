"""Each worker's in-memory knowledge of the fleet: what the poll path decides with, never asking
the store.

Per instance it keeps the license subject, the release last served, the release reported running
and when it was last seen (one small tuple, the strings shared between instances), plus how many
instances each subject has (for `maxInstances`). It is loaded in the background in bounded chunks
(`Store.instance_snapshot`) and kept current from the store's change feed
(`Store.instance_changes`); a worker that fell behind the feed's cap loads again. The worker's own
check-ins are noted at once (`note_served`), so it remembers what it just served before any flush.
Reads take no lock (a dict lookup); writes take one.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable
from typing import NamedTuple

from deployd.fleet.model import InstanceChange


class Known(NamedTuple):
    subject: str
    served: str | None
    reported: str | None
    last_seen: float


class FleetView:
    def __init__(self, *, max_instances: int = 1_000_000) -> None:
        self.max_instances = max_instances
        self._lock = threading.Lock()
        self._known: dict[str, Known] = {}
        self._subjects: dict[str, int] = {}
        self._strings: dict[str, str] = {}  # one copy of each subject and release string
        self.position: str | None = None  # the feed position applied; None: not loaded yet
        self.loaded = threading.Event()

    # Reads (the poll path).

    def running_release(self, instance_id: str) -> str | None:
        """The release `instance_id` runs as far as this worker knows: the one it reported
        running, else the one last served to it; None for an instance it does not know."""
        known = self._known.get(instance_id)
        if known is None:
            return None
        return known.reported or known.served

    def known(self, instance_id: str) -> Known | None:
        return self._known.get(instance_id)

    def knows(self, instance_id: str) -> bool:
        return instance_id in self._known

    def instances_of(self, subject: str) -> int:
        """How many instances of license subject `subject` this worker knows."""
        return self._subjects.get(subject, 0)

    def __len__(self) -> int:
        return len(self._known)

    # Writes: this worker's own polls and reports, and the feed.

    def note_served(self, instance_id: str, subject: str, release: str, seen: float) -> bool:
        """Remember that `instance_id` was just served `release`; False when the view is full
        (a new instance past `max_instances` is not remembered, and counted by the caller)."""
        with self._lock:
            known = self._known.get(instance_id)
            reported = known.reported if known is not None else None
            return self._put(instance_id, subject, release, reported, seen)

    def note_reported(self, instance_id: str, release: str) -> None:
        """Remember the release `instance_id` reported running (for the rollouts part)."""
        with self._lock:
            known = self._known.get(instance_id)
            if known is not None:
                self._put(instance_id, known.subject, known.served, release, known.last_seen)

    def forget(self, instance_id: str) -> None:
        with self._lock:
            self._remove(instance_id)

    def apply(self, changes: Iterable[InstanceChange], position: str) -> None:
        """Apply changes read from the feed, up to `position`."""
        with self._lock:
            for change in changes:
                self._apply(change)
            self.position = position

    def replace(self, changes: Iterable[InstanceChange], position: str) -> None:
        """Start again from a snapshot (every instance) taken at feed `position`."""
        with self._lock:
            self._known, self._subjects = {}, {}
            for change in changes:
                self._apply(change)
            self.position = position
        self.loaded.set()

    def expire(self, before: float, limit: int) -> int:
        """Forget up to `limit` instances last seen before `before` (also those never flushed,
        which the store's sweep cannot tell this worker about)."""
        with self._lock:
            stale = [k for k, v in self._known.items() if v.last_seen < before][:limit]
            for key in stale:
                self._remove(key)
            return len(stale)

    def approximate_bytes(self) -> int:
        """Memory the view holds, roughly (its dicts, keys and tuples; shared strings once)."""
        size = sys.getsizeof(self._known) + sys.getsizeof(self._subjects)
        size += sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in self._known.items())
        size += sum(sys.getsizeof(s) for s in self._strings)
        return size + sys.getsizeof(self._strings)

    # With the lock held.

    def _apply(self, change: InstanceChange) -> None:
        if change.removed:
            self._remove(change.key)
            return
        known = self._known.get(change.key)
        if known is not None and known.last_seen > change.last_seen:
            # This worker saw it more recently: keep its served release.
            self._put(change.key, change.subject, known.served, change.reported, known.last_seen)
            return
        self._put(change.key, change.subject, change.served, change.reported, change.last_seen)

    def _put(
        self,
        key: str,
        subject: str,
        served: str | None,
        reported: str | None,
        seen: float,
    ) -> bool:
        old = self._known.get(key)
        if old is None:
            if len(self._known) >= self.max_instances:
                return False
            subject = self._shared_text(subject)
            self._subjects[subject] = self._subjects.get(subject, 0) + 1
        self._known[key] = Known(
            self._shared_text(subject),
            self._shared(served),
            self._shared(reported),
            max(seen, old.last_seen) if old is not None else seen,
        )
        return True

    def _remove(self, key: str) -> None:
        old = self._known.pop(key, None)
        if old is None:
            return
        left = self._subjects.get(old.subject, 1) - 1
        if left:
            self._subjects[old.subject] = left
        else:
            self._subjects.pop(old.subject, None)

    def _shared(self, text: str | None) -> str | None:
        return None if text is None else self._shared_text(text)

    def _shared_text(self, text: str) -> str:
        shared = self._strings.setdefault(text, text)
        if len(self._strings) > 4 * self.max_instances:  # bounded: start the table again
            self._strings = {text: text}
        return shared
