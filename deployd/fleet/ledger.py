"""The fleet's records in one process's memory: what MemoryStore keeps for the fleet."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from deployd.fleet.model import InstanceChange, InstanceRecord
from deployd.fleet.paging import MAX_SCANNED, Cursor, FleetPage, FleetQuery


@dataclass
class Ledger:
    records: dict[str, InstanceRecord] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # channel -> release -> n
    subjects: dict[str, int] = field(default_factory=dict)  # subject -> instances
    feed: deque[tuple[int, InstanceChange]] = field(default_factory=deque)
    last: int = 0
    adoption: dict[str, dict[int, dict[str, int]]] = field(default_factory=dict)
    snapshot_hours: set[int] = field(default_factory=set)

    def subject_count(self, subject: str) -> int:
        return self.subjects.get(subject, 0)

    def put(self, record: InstanceRecord, feed_cap: int) -> None:
        old = self.records.get(record.key)
        if old is not None:
            self._count(old, -1)
        else:
            self.subjects[record.subject] = self.subjects.get(record.subject, 0) + 1
        self.records[record.key] = record
        self._count(record, 1)
        self._append(record.change(), feed_cap)

    def remove(self, record: InstanceRecord, feed_cap: int) -> None:
        del self.records[record.key]
        self._count(record, -1)
        left = self.subjects.get(record.subject, 1) - 1
        if left:
            self.subjects[record.subject] = left
        else:
            self.subjects.pop(record.subject, None)
        self._append(record.change(removed=True), feed_cap)

    def _count(self, record: InstanceRecord, delta: int) -> None:
        release = record.running
        if release is None:
            return
        counts = self.counts.setdefault(record.channel, {})
        n = counts.get(release, 0) + delta
        if n > 0:
            counts[release] = n
        else:
            counts.pop(release, None)

    def _append(self, change: InstanceChange, feed_cap: int) -> None:
        self.last += 1
        self.feed.append((self.last, change))
        while len(self.feed) > feed_cap:
            self.feed.popleft()


def page_of(ordered: list[InstanceRecord], query: FleetQuery) -> FleetPage:
    """The page of `query` from `ordered` (newest seen first, the cursor's skip applied)."""
    found: list[InstanceRecord] = []
    cursor = query.cursor or Cursor(query.top, 0)
    scanned = 0
    for record in ordered:
        if len(found) == query.limit or scanned == MAX_SCANNED:
            return FleetPage(found, cursor.encode())
        scanned += 1
        cursor = cursor.after([record.last_seen])
        if query.matches(record):
            found.append(record)
    return FleetPage(found, None)
