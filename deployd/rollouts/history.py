"""A channel's history with its halts and resumes among the publishes, newest first.

Publishes keep their own entries and sequences; a halt or resume is an entry of its own, marked
by its `event` (``halt``/``resume``) and placed by its time.
"""

from __future__ import annotations

from typing import Any

from deployd.publishing import record_dict
from deployd.rollouts.records import RolloutEvent
from deployd.store import ChannelRecord


def history_entries(
    records: list[ChannelRecord], events: list[RolloutEvent]
) -> list[dict[str, Any]]:
    """Publishes (`record_dict`) and rollout events, newest first: an event comes after the
    publish of the sequence it happened under and before the next one."""
    dated: list[tuple[int, int, int, dict[str, Any]]] = [
        (r.sequence, 0, i, record_dict(r)) for i, r in enumerate(records)
    ]
    dated += [
        (e.sequence, 1, i, {"channel": e.channel, **e.to_dict()}) for i, e in enumerate(events)
    ]
    dated.sort(key=lambda item: item[:3])
    return [entry for *_, entry in reversed(dated)]
