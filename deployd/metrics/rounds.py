"""The gauges and cache counts each worker's background refresher sets (deployd.server.refresher):
what the worker knows of the store, read from memory, and the fleet, read from the store every
`fleet_interval` seconds; and the poll path's counts since the last round (deployd.metrics.tally).
Nothing here runs on a request.

The caches count their hits and misses in plain integers (an increment per request, no lock); a
round adds what they counted since the last round to the Prometheus counters.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from deployd.errors import StoreUnavailableError
from deployd.metrics.registry import (
    CACHE_BYTES,
    COMPILED_CHANNELS,
    FLEET_INSTANCES,
    LICENSE_CACHE,
    RELEASE_HALTED,
    REVOCATIONS_AGE,
    REVOCATIONS_MAX_STALENESS,
    SPEC_CACHE,
    STORE_UNREACHABLE,
    VIEW_AGE,
)
from deployd.metrics.tally import TALLY
from deployd.server.view import ServerState

# How often a worker reads the fleet's counts per channel and release (one read per channel).
FLEET_INTERVAL_SECONDS = 15.0


class CountsHitsAndMisses(Protocol):
    hits: int
    misses: int
    bytes: int  # the estimate of its memory its bound applies to


class ReleaseCounts(Protocol):
    def release_counts_of(self, channels: Sequence[str]) -> dict[str, dict[str, int]]: ...


class _CacheCounts:
    """Adds a cache's hits and misses since the last call to a `result`-labelled counter."""

    def __init__(self, cache: CountsHitsAndMisses, counter: Any, name: str) -> None:
        self.cache = cache
        self.size = CACHE_BYTES.labels(name)
        self.hit, self.miss = counter.labels("hit"), counter.labels("miss")
        self.hits = self.misses = 0

    def add(self) -> None:
        self.size.set(self.cache.bytes)
        hits, misses = self.cache.hits, self.cache.misses
        self.hit.inc(max(0, hits - self.hits))
        self.miss.inc(max(0, misses - self.misses))
        self.hits, self.misses = hits, misses


class _LabelledGauge:
    """Sets a (channel, release) gauge to a full reading; pairs no longer read go to 0 (in
    multiprocess mode a child cannot be removed from the files other workers write)."""

    def __init__(self, gauge: Any) -> None:
        self.gauge = gauge
        self.seen: set[tuple[str, str]] = set()

    def set_all(self, values: Mapping[tuple[str, str], float]) -> None:
        for key in self.seen - set(values):
            self.gauge.labels(*key).set(0)
        for key, value in values.items():
            self.gauge.labels(*key).set(value)
        self.seen |= set(values)


class MetricsRound:
    def __init__(
        self,
        state: ServerState,
        *,
        license_cache: CountsHitsAndMisses,
        spec_cache: CountsHitsAndMisses,
        fleet_store: ReleaseCounts | None,
        fleet_interval: float = FLEET_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.caches = [
            _CacheCounts(license_cache, LICENSE_CACHE, "license"),
            _CacheCounts(spec_cache, SPEC_CACHE, "spec"),
        ]
        self.fleet_store = fleet_store
        self.fleet_interval = fleet_interval
        self.clock = clock
        self._fleet_read_at = float("-inf")
        self._halts = _LabelledGauge(RELEASE_HALTED)
        self._instances = _LabelledGauge(FLEET_INSTANCES)
        REVOCATIONS_MAX_STALENESS.set(state.revocation_max_staleness)

    def run(self) -> bool:
        """One round (a refresher task): True unless reading the fleet's counts failed."""
        TALLY.flush()
        for cache in self.caches:
            cache.add()
        self._set_view_gauges()
        halts = self.state.halts().items()
        self._halts.set_all(
            {(name, version): 1 for name, versions in halts for version in versions}
        )
        return self._read_fleet()

    def _set_view_gauges(self) -> None:
        state = self.state
        age = state.view_age()
        # Never read: as stale as can be (alerts on age fire until the first read).
        seconds = math.inf if age is None else age
        VIEW_AGE.set(seconds)
        # The revocation list is read with every refresh of the view: the same age.
        REVOCATIONS_AGE.set(seconds)
        STORE_UNREACHABLE.set(0 if state.store_reachable else 1)
        COMPILED_CHANNELS.set(state.compiled_count())
        CACHE_BYTES.labels("channel_documents").set(state.held_documents()[1])

    def _read_fleet(self) -> bool:
        if self.fleet_store is None or not self.state.store_reachable:
            return True
        now = self.clock()
        if now - self._fleet_read_at < self.fleet_interval:
            return True
        try:
            read = self.fleet_store.release_counts_of(self.state.channel_names())
            counts = {
                (name, release): count
                for name, releases in read.items()
                for release, count in releases.items()
            }
        except StoreUnavailableError:
            return False
        self._fleet_read_at = now
        self._instances.set_all(counts)
        return True
