"""Rate limits per license and per client address that hold across workers without a Redis trip
per request.

Each process counts requests locally and, at most once per `sync_interval`, adds its counts to the
shared per-minute counters in the store in batches and reads back the totals (a large backlog goes
out in slices of SYNC_BATCH_KEYS keys over the next requests). A key is refused when the last known
total plus what this process has counted since exceeds the limit, so a fleet of workers enforces
one limit, overshooting by about one sync interval's worth of requests.
When the store is unreachable the limiter fails open (and says so once in the log): limits protect
the service, they must not take it down.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping

from deployd.errors import RateLimitedError, StoreUnavailableError

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
# A request that finds a sync due sends at most this many keys: with thousands of licenses
# polling, one pipeline of them all would stall that request (and those queued behind it) for
# milliseconds, so their counts go out in slices over the next few requests instead.
SYNC_BATCH_KEYS = 64

# (window number, {key: increment}) -> {key: total in that window after adding}
AddCounts = Callable[[int, Mapping[str, int]], Mapping[str, int]]


class RateLimiter:
    def __init__(
        self,
        add_counts: AddCounts,
        *,
        limit: int,
        sync_interval: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.add_counts = add_counts
        self.limit = limit
        self.sync_interval = sync_interval
        self.clock = clock
        self._lock = threading.Lock()
        self._window = -1
        self._pending: dict[str, int] = {}
        self._totals: dict[str, int] = {}
        self._synced_at = float("-inf")
        self._failing = False

    def hit(self, *keys: str) -> None:
        """Count one request for each key; raise RateLimitedError when any is over the limit."""
        now = self.clock()
        with self._lock:
            window = self._current_window(now)
            for key in keys:
                if self._count(key) >= self.limit:
                    retry_after = math.ceil((window + 1) * WINDOW_SECONDS - now)
                    raise RateLimitedError(
                        f"too many requests: at most {self.limit} a minute; retry in"
                        f" {retry_after} s",
                        retry_after=max(1, retry_after),
                    )
            due = self._add(keys, now)
        if due:
            self.sync(SYNC_BATCH_KEYS)

    def allows(self, key: str) -> bool:
        """Whether `hit(key)` would let one more request through now. Counts nothing."""
        now = self.clock()
        with self._lock:
            self._current_window(now)
            return self._count(key) < self.limit

    def count(self, *keys: str) -> None:
        """Count one request for each key without refusing any: for callers that asked `allows`.

        Between the two calls another thread may count too, so under threaded workers a key can
        overshoot by the number of threads, well inside the one-sync-interval overshoot above.
        """
        now = self.clock()
        with self._lock:
            self._current_window(now)
            due = self._add(keys, now)
        if due:
            self.sync(SYNC_BATCH_KEYS)

    def _current_window(self, now: float) -> int:
        # Called with the lock held: a new minute starts every count from zero.
        window = int(now // WINDOW_SECONDS)
        if window != self._window:
            self._window, self._pending, self._totals = window, {}, {}
        return window

    def _count(self, key: str) -> int:
        return self._totals.get(key, 0) + self._pending.get(key, 0)

    def _add(self, keys: tuple[str, ...], now: float) -> bool:
        """Add one to each key's pending count; True when the store is due a sync."""
        pending = self._pending
        for key in keys:
            pending[key] = pending.get(key, 0) + 1
        return now - self._synced_at >= self.sync_interval

    def sync(self, max_keys: int | None = None) -> None:
        """Push this process's counts to the store and learn everyone's totals for those keys.

        With `max_keys`, only that many keys go (those counted longest ago); the rest stay
        pending and the sync stays due, so the following requests send them.
        """
        with self._lock:
            window = self._window
            if max_keys is None or len(self._pending) <= max_keys:
                pending, self._pending = self._pending, {}
                self._synced_at = self.clock()
            else:
                keys = list(itertools.islice(self._pending, max_keys))
                pending = {key: self._pending.pop(key) for key in keys}
        if not pending:
            return
        try:
            totals = self.add_counts(window, pending)
        except StoreUnavailableError as e:
            if not self._failing:
                logger.warning("rate limits not shared while the store is unreachable: %s", e)
                self._failing = True
            totals = {key: self._totals.get(key, 0) + n for key, n in pending.items()}
        else:
            self._failing = False
        with self._lock:
            if window == self._window:
                self._totals.update(totals)
