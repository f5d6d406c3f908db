"""The fleet listing's cursor and filters, shared by both stores: newest seen first."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from deployd.errors import BadRequestError
from deployd.fleet.model import InstanceRecord

MAX_PAGE = 500
# How many index entries one page may look at before it answers with what it found (and a
# cursor): a filter that matches little still answers quickly.
MAX_SCANNED = 20_000


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: at `score` (last seen) and below, skipping the first `skip`
    entries of exactly that score (those were on the earlier pages)."""

    score: float
    skip: int

    def encode(self) -> str:
        return f"{self.score!r}:{self.skip}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            score, skip = text.split(":")
            cursor = cls(float(score), int(skip))
        except ValueError:
            raise BadRequestError("not a cursor this API returned", code="bad_cursor") from None
        if cursor.skip < 0 or cursor.score != cursor.score:
            raise BadRequestError("not a cursor this API returned", code="bad_cursor")
        return cursor

    def after(self, scores: Iterable[float]) -> Cursor:
        """The cursor after consuming entries of `scores` (in order, newest first) from here."""
        cursor = self
        for score in scores:
            cursor = Cursor(score, cursor.skip + 1 if score == cursor.score else 1)
        return cursor


@dataclass(frozen=True)
class FleetQuery:
    channel: str | None = None
    customer: str | None = None
    release: str | None = None
    seen_since: float | None = None
    seen_before: float | None = None
    cursor: Cursor | None = None
    limit: int = 100
    # Anything else a record must satisfy (e.g. "behind by N releases", deployd.fleet.queries).
    keep: Callable[[InstanceRecord], bool] | None = None

    def matches(self, record: InstanceRecord) -> bool:
        if self.channel is not None and record.channel != self.channel:
            return False
        if self.customer is not None and record.subject != self.customer:
            return False
        if self.release is not None and record.running != self.release:
            return False
        return self.keep is None or self.keep(record)

    @property
    def top(self) -> float:
        """The highest last-seen score this page may show."""
        bounds = [float("inf")]
        if self.seen_before is not None:
            bounds.append(self.seen_before)
        if self.cursor is not None:
            bounds.append(self.cursor.score)
        return min(bounds)

    @property
    def skip(self) -> int:
        if self.cursor is None or self.top < self.cursor.score:
            return 0
        return self.cursor.skip


@dataclass(frozen=True)
class FleetPage:
    instances: list[InstanceRecord]
    cursor: str | None  # None: nothing further
