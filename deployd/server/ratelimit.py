"""Rate limits per license and per client address that hold across workers without a store round
trip on the request path.

The store keeps one counter per key and minute. A worker admits a request only out of an
**allowance** it holds for that key: budget it has reserved in the store's counter, so what every
worker may still admit is already counted there. `sync()` (the background thread calls it, never a
request) tops up the allowances of the keys used since the last sync: it adds the top-up to the
store's counter in one batch and keeps only the part that fits under the limit (the rest goes back
on the next sync). However the workers' syncs interleave, the reserved budgets never sum past the
limit.

The one exception is a key's first requests on a worker in a minute, before that worker has synced
it: those are admitted out of a **credit**, reported to the store (as reserved) at the next sync.
With `processes` limiters sharing the store (gunicorn workers x replicas), the credit is an even
share of the limit, `max(1, limit // processes)` (so a single process enforces the limit
exactly), enough for a client's burst landing on one worker. A top-up is granted only when it fits
under the limit with everything already in the counter, so the only budget not checked against
the others is the credits of workers that had not reported theirs yet: in any minute a key gets
at most `limit + (processes - 1) x credit` requests through, under twice the limit (60 a minute
on 3 workers: credit 20, at most 100), and that only when the syncs interleave at their worst.
The price is the other way round: budget a worker reserved and did not use is not available to
the others, so near the limit a key can be refused a few requests early. A worker whose allowance
for a key falls to half the credit calls `wake` (the background refresher syncs at once rather
than at its next interval), so a burst is rarely refused for want of a sync.

When the store is unreachable the limiter fails open (and says so once in the log): each worker
then grants itself what is left of the limit as if it were alone. Limits protect the service,
they must not take it down.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from deployd.errors import RateLimitedError, StoreUnavailableError

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
# One sync sends at most this many keys per store round trip, so a backlog of thousands of
# licenses goes out as several small pipelines rather than one large one.
SYNC_BATCH_KEYS = 64

# (window number, {key: increment}) -> {key: total in that window after adding}
AddCounts = Callable[[int, Mapping[str, int]], Mapping[str, int]]


@dataclass
class _Key:
    """What this worker knows about one key in the current window."""

    allowance: int  # requests it may still admit before it syncs again
    used: int = 0  # admitted since the last sync
    unreported: int = 0  # admitted or granted here but not yet added to the store's counter
    give_back: int = 0  # reserved in the store beyond the limit: returned on the next sync
    wanted: bool = False  # a request was refused since the last sync
    total: int = 0  # the store's counter as last read (reservations included)


def credit_for(limit: int, processes: int) -> int:
    """What a process may admit for a key before its first sync (see the module docstring)."""
    return max(1, limit // max(1, processes))


def overshoot_bound(limit: int, processes: int) -> int:
    """The most requests a key can get through in one minute across `processes` limiters."""
    return limit + (processes - 1) * credit_for(limit, processes)


class RateLimiter:
    def __init__(
        self,
        add_counts: AddCounts,
        *,
        limit: int,
        processes: int = 1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.add_counts = add_counts
        self.limit = limit
        self.credit = credit_for(limit, processes)
        self.clock = clock
        self._lock = threading.Lock()
        self._window = -1
        self._keys: dict[str, _Key] = {}
        self._failing = False
        # Called (without the lock) when a key's allowance runs low: asks for a sync now.
        self.wake: Callable[[], None] | None = None

    def hit(self, *keys: str) -> None:
        """Count one request for each key; raise RateLimitedError when any is over the limit."""
        now = self.clock()
        with self._lock:
            window = self._current_window(now)
            for key in keys:
                state = self._key(key)
                if state.allowance <= 0:
                    state.wanted = True
                    retry_after = math.ceil((window + 1) * WINDOW_SECONDS - now)
                    raise RateLimitedError(
                        f"too many requests: at most {self.limit} a minute; retry in"
                        f" {retry_after} s",
                        retry_after=max(1, retry_after),
                    )
            running_low = self._add(keys)
        if running_low:
            self._wake()

    def allows(self, key: str) -> bool:
        """Whether `hit(key)` would let one more request through now. Counts nothing."""
        with self._lock:
            self._current_window(self.clock())
            state = self._keys.get(key)
            return state is None or state.allowance > 0

    def count(self, *keys: str) -> None:
        """Count one request for each key without refusing any: for callers that asked `allows`.

        Between the two calls another thread may count too, so under threaded workers a key can
        go past its allowance by the number of threads; the next sync charges it.
        """
        with self._lock:
            self._current_window(self.clock())
            running_low = self._add(keys)
        if running_low:
            self._wake()

    def _wake(self) -> None:
        if self.wake is not None:
            self.wake()

    def _current_window(self, now: float) -> int:
        # Called with the lock held: a new minute starts every key afresh.
        window = int(now // WINDOW_SECONDS)
        if window != self._window:
            self._window, self._keys = window, {}
        return window

    def _key(self, key: str) -> _Key:
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _Key(allowance=self.credit, unreported=self.credit)
        return state

    def _add(self, keys: tuple[str, ...]) -> bool:
        """Count one request for each key; True when some key's allowance fell to half the
        credit (time to sync, before it runs out)."""
        running_low = False
        for key in keys:
            state = self._key(key)
            state.allowance -= 1
            state.used += 1
            running_low = running_low or state.allowance <= self.credit // 2
        return running_low

    def sync(self, max_keys: int = SYNC_BATCH_KEYS) -> bool:
        """Top up, through the store, the allowance of every key used or refused since the last
        sync, `max_keys` keys per round trip. False when the store was unreachable (the limiter
        then fails open until a sync succeeds)."""
        with self._lock:
            window = self._window
            due = [key for key, state in self._keys.items() if state.used or state.wanted]
            for key in due:
                self._keys[key].wanted = False
        ok = True
        for start in range(0, len(due), max_keys):
            ok = (
                self._sync_batch(window, list(itertools.islice(due, start, start + max_keys)))
                and ok
            )
        return ok

    def _sync_batch(self, window: int, keys: list[str]) -> bool:
        with self._lock:
            if window != self._window:
                return True  # a new minute began: nothing of the old one matters
            increments: dict[str, int] = {}
            topups: dict[str, int] = {}
            used: dict[str, int] = {}
            for key in keys:
                state = self._keys[key]
                # Aim for twice what was used since the last sync, and at least the credit.
                topup = max(0, max(self.credit, 2 * state.used) - state.allowance)
                topups[key], used[key] = topup, state.used
                increments[key] = state.unreported + topup - state.give_back
                state.used = 0
            sent = {key: n for key, n in increments.items() if n}
        try:
            totals = self.add_counts(window, sent) if sent else {}
        except StoreUnavailableError as e:
            self._fail_open(window, used, e)
            return False
        # Only an answer from the store says it is back: a batch that sent nothing asked nothing.
        if sent and self._failing:
            logger.info("rate limits shared again")
            self._failing = False
        with self._lock:
            if window != self._window:
                return True
            for key in keys:
                state = self._keys[key]
                state.unreported = state.give_back = 0
                state.total = totals.get(key, state.total)
                granted = max(0, topups[key] - max(0, state.total - self.limit))
                state.allowance += granted
                state.give_back = topups[key] - granted
        return True

    def _fail_open(self, window: int, used: dict[str, int], error: StoreUnavailableError) -> None:
        if not self._failing:
            logger.warning("rate limits not shared while the store is unreachable: %s", error)
            self._failing = True
        with self._lock:
            if window != self._window:
                return
            for key, n in used.items():
                state = self._keys[key]
                # As if this worker were alone: what is left of the limit after the last known
                # total and what it admitted since. Reservations stay unreported until the store
                # is back.
                state.total += n
                state.allowance = max(state.allowance, self.limit - state.total)
