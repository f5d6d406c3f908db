"""What one server process knows: compiled channels and revoked license ids, kept in memory.

The store is the truth; each process answers from this snapshot and asks the store whether anything
changed at most once per `refresh_interval` (one cheap read of the generation counter), so the hot
path costs no store round trip and a publish or revocation is seen within about a second. While the
store is unreachable the snapshot keeps answering whatever it can, except license checks: the
revocation list is trusted for `revocation_max_staleness` seconds after the last successful read,
then `is_revoked` fails closed, so a revocation takes effect within that bound even on a worker
cut off from the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from deployd.channels import Channel, channel_from_document
from deployd.errors import StoreUnavailableError
from deployd.store import Store

logger = logging.getLogger(__name__)


class ServerState:
    def __init__(
        self,
        store: Store,
        *,
        refresh_interval: float = 0.5,
        revocation_max_staleness: float = 300.0,
        max_channels: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.refresh_interval = refresh_interval
        self.revocation_max_staleness = revocation_max_staleness
        self.max_channels = max_channels
        self.clock = clock
        self._lock = threading.RLock()
        self._checked_at = float("-inf")
        self._read_at: float | None = None  # when the store last answered a refresh
        self._generation: int | None = None
        self._sequences: dict[str, int] = {}
        # Compiled channels cost memory (tens of KB each): keep the `max_channels` used most
        # recently, so a worker's size follows the channels its fleet polls, not the store's size.
        self._compiled: OrderedDict[str, tuple[int, Channel]] = OrderedDict()
        self._revoked: set[str] = set()
        self._revocation_offset = 0
        self.store_error: str | None = None

    @property
    def store_reachable(self) -> bool:
        return self.store_error is None

    def refresh(self, *, force: bool = False) -> None:
        """Pick up publishes and revocations made anywhere since the last look.

        Until the store has answered once, a caller waits for the read under way (the worker has
        nothing to answer from yet); after that, callers never wait for another's refresh.
        """
        loaded = self._read_at is not None
        if not force and loaded and self.clock() - self._checked_at < self.refresh_interval:
            return
        with self._lock:
            if not force and self.clock() - self._checked_at < self.refresh_interval:
                return
            self._checked_at = self.clock()
            try:
                generation = self.store.generation()
                if generation != self._generation:
                    sequences = self.store.sequences()
                    new, offset = self.store.revocations_since(self._revocation_offset)
                    self._sequences = sequences
                    self._revoked.update(new)
                    self._revocation_offset = offset
                    self._generation = generation
            except StoreUnavailableError as e:
                if self.store_error is None:
                    logger.warning("store unreachable, serving cached state: %s", e.message)
                self.store_error = e.message
                return
            self._read_at = self._checked_at
            if self.store_error is not None:
                logger.info("store reachable again")
                self.store_error = None

    def channel_names(self) -> list[str]:
        self.refresh()
        return sorted(self._sequences)

    def channel(self, name: str) -> tuple[int, Channel] | None:
        """The current (sequence, compiled channel), or None when no such channel exists.

        Raises StoreUnavailableError only when the channel was never loaded and the store is down.
        """
        self.refresh()
        sequence = self._sequences.get(name)
        compiled = self._compiled.get(name)
        if sequence is None:
            if self._generation is None and self.store_error is not None:
                raise StoreUnavailableError(self.store_error)
            return None
        if compiled is not None and compiled[0] >= sequence:
            try:
                self._compiled.move_to_end(name)
            except KeyError:  # evicted meanwhile by another thread
                pass
            return compiled
        with self._lock:
            try:
                record = self.store.get_channel(name)
            except StoreUnavailableError:
                if compiled is not None:
                    return compiled
                raise
            if record is None:
                return None
            compiled = (record.sequence, channel_from_document(record.document, filename=name))
            self._compiled[name] = compiled
            self._compiled.move_to_end(name)
            while len(self._compiled) > self.max_channels:
                self._compiled.popitem(last=False)
            return compiled

    def is_revoked(self, jti: str) -> bool:
        """Whether `jti` is on the revocation list as last read from the store.

        Fails closed: raises StoreUnavailableError when the store is unreachable and the list was
        never read or was last read more than `revocation_max_staleness` seconds ago.
        """
        self.refresh()
        read_at = self._read_at
        stale = read_at is None or self.clock() - read_at > self.revocation_max_staleness
        if self.store_error is not None and stale:
            raise StoreUnavailableError(
                "licenses cannot be checked: the revocation list has not been refreshed for over"
                f" {self.revocation_max_staleness:g} s because the store is unreachable"
            )
        return jti in self._revoked
