"""What one server process knows: compiled channels and revoked license ids, kept in memory.

The store is the truth; each process answers from this snapshot. Inside the server a background
thread (`deployd.refresher`) calls `background_round()` every `refresh_interval`: it asks the store
whether anything changed (one cheap read of the generation counter) and reloads the compiled
channels a publish changed, so requests never wait on the store (`auto_refresh=False`). Only the
very first view is loaded by a request when the thread has not loaded it yet: a request never sees
an empty view of a store that has channels. Used on its own (`auto_refresh=True`, the default),
reads refresh at most once per `refresh_interval` themselves. While the store is unreachable the
snapshot keeps answering whatever it can, except license checks: the revocation list is trusted for
`revocation_max_staleness` seconds after the last successful read, then `is_revoked` fails closed,
so a revocation takes effect within that bound even on a worker cut off from the store.
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
        auto_refresh: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.refresh_interval = refresh_interval
        self.revocation_max_staleness = revocation_max_staleness
        self.max_channels = max_channels
        self.auto_refresh = auto_refresh
        self.clock = clock
        self._lock = threading.RLock()
        # Set only once a refresh has finished (read the store or failed to): a reader that
        # finds it recent may rely on what that refresh left, never on one still under way.
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
        """Pick up publishes and revocations made anywhere since the last look."""
        if not force and self.clock() - self._checked_at < self.refresh_interval:
            return
        with self._lock:
            if not force and self.clock() - self._checked_at < self.refresh_interval:
                return
            started = self.clock()
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
            finally:
                self._checked_at = started
            self._read_at = started
            if self.store_error is not None:
                logger.info("store reachable again")
                self.store_error = None

    def _fresh_enough(self) -> None:
        """What a read does first: refresh itself when used on its own; inside the server, where
        the background thread refreshes, wait only for the very first view (see `first_view`)."""
        if self.auto_refresh:
            self.refresh()
        elif self._checked_at == float("-inf"):
            self.first_view()

    def first_view(self) -> None:
        """Load the first view unless some refresh has finished already (loaded, or found the
        store unreachable). Concurrent callers wait for that one load, not for one each."""
        if self._checked_at != float("-inf"):
            return
        with self._lock:
            if self._checked_at == float("-inf"):
                self.refresh(force=True)

    def background_round(self) -> bool:
        """One round of the background thread: refresh, then compile again the channels kept in
        memory that a publish changed, so requests find them ready. True when the store answered."""
        self.refresh(force=True)
        try:
            kept = [(name, compiled[0]) for name, compiled in list(self._compiled.items())]
        except RuntimeError:  # reordered by a request meanwhile: reload on the next round
            kept = []
        for name, compiled_sequence in kept:
            if not self.store_reachable:
                break
            if self._sequences.get(name, compiled_sequence) > compiled_sequence:
                try:
                    self._load(name)
                except StoreUnavailableError:
                    return False  # requests answer from the older version meanwhile
        return self.store_reachable

    def view_age(self) -> float | None:
        """Seconds since the store last answered a refresh; None when it never did."""
        read_at = self._read_at
        return None if read_at is None else max(0.0, self.clock() - read_at)

    def channel_names(self) -> list[str]:
        self._fresh_enough()
        return sorted(self._sequences)

    def channel(self, name: str) -> tuple[int, Channel] | None:
        """The current (sequence, compiled channel), or None when no such channel exists.

        Raises StoreUnavailableError only when the channel was never loaded and the store is down.
        """
        self._fresh_enough()
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
        if not self.auto_refresh and self.store_error is not None:
            # The background thread finds the store unreachable: answer now, don't wait on it.
            if compiled is not None:
                return compiled
            raise StoreUnavailableError(self.store_error)
        try:
            return self._load(name)
        except StoreUnavailableError:
            if compiled is not None:
                return compiled
            raise

    def _load(self, name: str) -> tuple[int, Channel] | None:
        """Read and compile channel `name` from the store, and keep it (the store is read without
        the lock held, so a slow read holds up no other thread)."""
        record = self.store.get_channel(name)
        if record is None:
            return None
        compiled = (record.sequence, channel_from_document(record.document, filename=name))
        with self._lock:
            kept = self._compiled.get(name)
            if kept is not None and kept[0] > compiled[0]:
                return kept
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
        self._fresh_enough()
        read_at = self._read_at
        stale = read_at is None or self.clock() - read_at > self.revocation_max_staleness
        if self.store_error is not None and stale:
            raise StoreUnavailableError(
                "licenses cannot be checked: the revocation list has not been refreshed for over"
                f" {self.revocation_max_staleness:g} s because the store is unreachable"
            )
        return jti in self._revoked
