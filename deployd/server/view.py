"""What one server process knows: compiled channels, revoked license ids and halted releases,
kept in memory.

The store is the truth; each process answers from this snapshot. Inside the server a background
thread (`deployd.server.refresher`) calls `background_round()` every `refresh_interval`: it asks
the store whether anything changed (one cheap read of the generation counter), reloads the
compiled channels a publish changed and compiles the channels it has room for and has not compiled
yet (so a fresh worker can serve every channel through a store outage, not only the ones it
happened to be asked for), so requests never wait on the store (`auto_refresh=False`).
Only the very first view is loaded by a request when the thread has not loaded it yet: a request
never sees an empty view of a store that has channels. Used on its own (`auto_refresh=True`, the
default), reads refresh at most once per `refresh_interval` themselves. While the store is
unreachable the snapshot keeps answering whatever it can, except license checks: the revocation
list is trusted for `revocation_max_staleness` seconds after the last successful read, then
`is_revoked` fails closed, so a revocation takes effect within that bound even on a worker cut off
from the store.

Every channel of the store is also kept as its compressed document (`_documents`, a few hundred
bytes to a few KB each), which the background rounds fetch: compiled channels cost tens of KB each
and only `max_channels` of them are kept, but a channel outside them is compiled again from its
document in memory, not read from the store, so the size of the store never puts a store read on
the poll path, and a worker can serve every channel through an outage. A poll whose spec was
rendered already needs no compiled channel at all (`sequence`, deployd.specs.rendering).

The store can also lose data or be replaced (deployd/store/__init__.py explains the epoch and the
sequence floors). `refresh` reads the epoch with the generation; when the epoch changed, or the
generation, a channel's sequence or the revocation log went backwards, the store is not the one
this process derived its state from: it records the highest sequence it saw of each channel as a
floor in the store (so the next publish goes above whatever it served), drops its compiled
channels, sequences and revocations, tells the reset listeners (the spec and license caches),
and reloads everything. A store without an epoch is served from by nobody: `channel` and
`is_revoked` raise StoreUninitializedError (503 ``store_uninitialized``) until it is initialised.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from deployd.channels import Channel, channel_from_document
from deployd.errors import StoreUnavailableError, StoreUninitializedError
from deployd.metrics.hooks import store_reset
from deployd.store import Store, StoreMarker

logger = logging.getLogger(__name__)

# Logged once per process, when a refresh first reads the store (a worker's log says it is ready
# to serve through an outage from then on).
FIRST_VIEW_LOADED = "first view of the store loaded"

# How many channels not compiled yet one background round compiles (one store read each), so a
# worker fills its cache within seconds of starting while each round stays short.
PREFETCH_PER_ROUND = 50
# How many channel documents one background round fetches (one store read each, no compile), so
# a worker holds every channel of a store of 10,000 within seconds of starting.
DOCUMENTS_PER_ROUND = 500
_NOTHING_HALTED: frozenset[str] = frozenset()


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
        # Every channel read so far, as (sequence, its document as compressed JSON): what a
        # channel evicted from `_compiled` is compiled again from, without the store.
        self._documents: dict[str, tuple[int, bytes]] = {}
        self._documents_bytes = 0  # their compressed sizes added up
        # The generation at which every channel's document was found held at its sequence: until
        # the generation moves, a background round need not look again (10,000 channels).
        self._documents_complete_at: int | None = None
        self._revoked: set[str] = set()
        self._revocation_offset = 0
        self._last_revoked: str | None = None  # the id at `_revocation_offset - 1`
        self._epoch: str | None = None
        # Not derived from the store, so kept through resets: the highest sequence of each
        # channel this process saw, a floor for the store's next publish if it goes back.
        self._high_water: dict[str, int] = {}
        self._reset_listeners: list[Callable[[], None]] = []
        # channel -> versions of its halted releases (deployd.rollouts), read with the generation
        self._halted: dict[str, frozenset[str]] = {}
        self.uninitialized = False  # the store answered, without an epoch
        self._loaded = False  # a refresh has read the store (logged once per process)
        self.store_error: str | None = None

    def add_reset_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener` whenever this state drops what it derived from a replaced store."""
        self._reset_listeners.append(listener)

    @property
    def store_reachable(self) -> bool:
        return self.store_error is None

    def refresh(self, *, force: bool = False) -> None:
        """Pick up publishes and revocations made anywhere since the last look.

        A refresh counts as done only once it has read the store (or found it unreachable), so a
        caller that arrives during the very first read waits for it instead of answering from the
        empty view; after that, callers never wait for another's refresh.
        """
        if not force and self.clock() - self._checked_at < self.refresh_interval:
            return
        with self._lock:
            if not force and self.clock() - self._checked_at < self.refresh_interval:
                return
            started = self.clock()
            try:
                self._sync()
            except StoreUnavailableError as e:
                if self.store_error is None:
                    logger.warning("store unreachable, serving cached state: %s", e.message)
                self.store_error = e.message
                return
            finally:
                self._checked_at = started
            if self._loaded is False:
                self._loaded = True
                logger.info(
                    FIRST_VIEW_LOADED + ": %d channels, generation %s",
                    len(self._sequences),
                    self._generation,
                )
            self._read_at = started
            if self.store_error is not None:
                logger.info("store reachable again")
                self.store_error = None

    def _sync(self) -> None:
        """Read what changed in the store; start over when it is not the store it was."""
        marker = self.store.marker()
        if marker.epoch is None:
            self._forget_uninitialized()
            return
        why = self._went_back(marker)
        if why is not None:
            self._reset(why)
        if marker.generation == self._generation:
            return
        sequences = self.store.sequences()
        known = dict(self._sequences)
        for name, (compiled_sequence, _) in list(self._compiled.items()):
            known[name] = max(known.get(name, 0), compiled_sequence)
        behind = sorted(n for n, s in known.items() if sequences.get(n, 0) < s)
        if behind:
            self._reset(f"channel {', '.join(behind)} went back to an older sequence")
        new = self._new_revocations()
        if new is None:
            self._reset("the revocation list shrank or was rewritten")
            new = self._new_revocations() or []
        self._halted = {
            name: frozenset(halted) for name, halted in self.store.halts().items() if halted
        }
        self._sequences = sequences
        self._note_sequences(sequences)
        self._revoked.update(new)
        self._generation = marker.generation
        self._epoch = marker.epoch
        if self.uninitialized:
            logger.info("the store is initialised (epoch %s): serving from it", marker.epoch)
            self.uninitialized = False

    def _new_revocations(self) -> list[str] | None:
        """The ids revoked since the last read, or None when the log is not the one read before.

        Reads from the last id already known, which must still be where it was: a log that went
        back and grew again past its old length is noticed too.
        """
        offset, last = self._revocation_offset, self._last_revoked
        new, length = self.store.revocations_since(max(offset - 1, 0))
        if offset:
            if length < offset or not new or new[0] != last:
                return None
            new = new[1:]
        self._revocation_offset = length
        if new:
            self._last_revoked = new[-1]
        return new

    def _went_back(self, marker: StoreMarker) -> str | None:
        """Why the store `marker` describes is not the one last read, or None."""
        if self._epoch is not None and marker.epoch != self._epoch:
            return f"its epoch changed from {self._epoch} to {marker.epoch}"
        if self._generation is not None and marker.generation < self._generation:
            return f"its generation went back from {self._generation} to {marker.generation}"
        return None

    def _forget_uninitialized(self) -> None:
        if not self.uninitialized:
            logger.error(
                "the store is not initialised (Redis lost its data or is new): serving nothing"
                " until someone runs `deployd store restore FILE` or `deployd store init`"
            )
        if self._epoch is not None or self._generation is not None:
            self._reset("it lost its epoch (emptied or never initialised)")
        self.uninitialized = True

    def _reset(self, why: str) -> None:
        """Drop everything derived from the store, after recording the sequences served."""
        if self._high_water:
            self.store.raise_floors(self._high_water)
        logger.warning(
            "the store is not the one this worker read before (%s): dropping %d compiled"
            " channels and %d revocations and reloading; recorded the sequences it saw of %d"
            " channels as floors for the next publishes",
            why,
            len(self._compiled),
            len(self._revoked),
            len(self._high_water),
        )
        store_reset()
        self._compiled.clear()
        self._documents.clear()
        self._documents_bytes = 0
        self._documents_complete_at = None
        self._read_at = None  # license checks fail closed until the revocations are read again
        self._sequences = {}
        self._revoked = set()
        self._halted = {}
        self._revocation_offset = 0
        self._last_revoked = None
        self._generation = None
        self._epoch = None
        for listener in self._reset_listeners:
            listener()

    def _note_sequences(self, sequences: dict[str, int]) -> None:
        for name, sequence in sequences.items():
            if sequence > self._high_water.get(name, 0):
                self._high_water[name] = sequence

    def _check_initialized(self) -> None:
        if self.uninitialized:
            raise StoreUninitializedError(
                "the store is not initialised (new, or it lost its data): nothing is served until"
                " an operator runs `deployd store restore FILE` or `deployd store init`"
            )

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
        """One round of the background thread: refresh, compile again the channels kept in memory
        that a publish changed, fetch the documents of channels not held (or held at an older
        sequence), then compile channels not compiled yet while there is room, so requests find
        them ready and no poll reads the store. True when the store answered."""
        self.refresh(force=True)
        try:
            kept = [(name, compiled[0]) for name, compiled in list(self._compiled.items())]
        except RuntimeError:  # reordered by a request meanwhile: reload on the next round
            kept = []
        stale = [n for n, s in kept if self._sequences.get(n, s) > s]
        try:
            for name in stale:
                if not self.store_reachable:
                    break
                self._load(name)
            for name in self._documents_missing(DOCUMENTS_PER_ROUND):
                if not self.store_reachable:
                    break
                self._fetch(name)
            for name in self._not_compiled(PREFETCH_PER_ROUND):
                if not self.store_reachable:
                    break
                if self._compile_held(name, self._sequences.get(name, 0)) is None:
                    self._load(name)
        except StoreUnavailableError:
            return False  # requests answer from what is compiled or held meanwhile
        return self.store_reachable

    def _documents_missing(self, limit: int) -> list[str]:
        """Up to `limit` channels of the store whose document is not held, or held at an older
        sequence than the store's (a publish since): those first."""
        generation = self._generation
        if generation is not None and generation == self._documents_complete_at:
            return []
        documents, sequences = self._documents, self._sequences
        behind = [n for n, (s, _) in list(documents.items()) if sequences.get(n, s) > s]
        missing = (name for name in sorted(sequences) if name not in documents)
        wanted = (behind + list(itertools.islice(missing, limit)))[:limit]
        if not wanted:
            self._documents_complete_at = generation
        return wanted

    def _not_compiled(self, limit: int) -> list[str]:
        """Up to `limit` channels of the store not compiled here, as many as fit in the cache
        without evicting one (by name: which ones is arbitrary, and requests reorder the cache)."""
        room = min(limit, self.max_channels - len(self._compiled))
        if room <= 0:
            return []
        compiled = self._compiled
        missing = (name for name in sorted(self._sequences) if name not in compiled)
        return list(itertools.islice(missing, room))

    def view_age(self) -> float | None:
        """Seconds since the store last answered a refresh; None when it never did."""
        read_at = self._read_at
        return None if read_at is None else max(0.0, self.clock() - read_at)

    def channel_names(self) -> list[str]:
        self._fresh_enough()
        return sorted(self._sequences)

    def channel(self, name: str) -> tuple[int, Channel] | None:
        """The current (sequence, compiled channel), or None when no such channel exists.

        Raises StoreUnavailableError only when the channel was never loaded and the store is
        down, StoreUninitializedError while the store is not initialised.
        """
        self._fresh_enough()
        self._check_initialized()
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
        held = self._compile_held(name, sequence)
        if held is not None:
            return held
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

    def sequence(self, name: str) -> int | None:
        """The newest sequence of channel `name` this process knows (what `channel` would
        answer it at, or above), None when there is no such channel; without compiling it.
        Raises StoreUninitializedError while the store is not initialised."""
        self._fresh_enough()
        self._check_initialized()
        sequence = self._sequences.get(name)
        if sequence is None:
            return None
        compiled = self._compiled.get(name)
        return sequence if compiled is None else max(sequence, compiled[0])

    def _fetch(self, name: str) -> None:
        """Read channel `name`'s document from the store and hold it, without compiling it."""
        record = self.store.get_channel(name)
        if record is not None:
            self._hold(name, record.sequence, record.document)

    def _hold(self, name: str, sequence: int, document: dict[str, Any]) -> None:
        packed = zlib.compress(json.dumps(document, separators=(",", ":")).encode(), 6)
        with self._lock:
            held = self._documents.get(name)
            if held is None or held[0] < sequence:
                self._documents[name] = (sequence, packed)
                self._documents_bytes += len(packed) - (0 if held is None else len(held[1]))
                self._note_sequences({name: sequence})

    def _compile_held(self, name: str, sequence: int) -> tuple[int, Channel] | None:
        """Compile channel `name` from the document held in memory when it is at `sequence` or
        above, and keep it; None when no such document is held."""
        held = self._documents.get(name)
        if held is None or held[0] < sequence:
            return None
        document = json.loads(zlib.decompress(held[1]))
        return self._keep(name, (held[0], channel_from_document(document, filename=name)))

    def _load(self, name: str) -> tuple[int, Channel] | None:
        """Read and compile channel `name` from the store, and keep it (the store is read without
        the lock held, so a slow read holds up no other thread)."""
        record = self.store.get_channel(name)
        if record is None:
            return None
        self._hold(name, record.sequence, record.document)
        return self._keep(
            name, (record.sequence, channel_from_document(record.document, filename=name))
        )

    def _keep(self, name: str, compiled: tuple[int, Channel]) -> tuple[int, Channel]:
        """Keep a compiled channel unless a newer one is kept already; the one kept."""
        with self._lock:
            kept = self._compiled.get(name)
            if kept is not None and kept[0] > compiled[0]:
                return kept
            self._note_sequences({name: compiled[0]})
            self._compiled[name] = compiled
            self._compiled.move_to_end(name)
            while len(self._compiled) > self.max_channels:
                self._compiled.popitem(last=False)
            return compiled

    def halts(self) -> dict[str, frozenset[str]]:
        """Channel -> versions of its halted releases, as last read from the store."""
        return dict(self._halted)

    def compiled_count(self) -> int:
        """How many compiled channels this process holds."""
        return len(self._compiled)

    def held_documents(self) -> tuple[int, int]:
        """(how many channel documents this process holds, their compressed bytes)."""
        return len(self._documents), self._documents_bytes

    def halted(self, name: str) -> frozenset[str]:
        """The versions of channel `name`'s halted releases, as last read from the store."""
        return self._halted.get(name, _NOTHING_HALTED)

    def is_revoked(self, jti: str) -> bool:
        """Whether `jti` is on the revocation list as last read from the store.

        Fails closed: raises StoreUnavailableError when the store is unreachable and the list was
        never read or was last read more than `revocation_max_staleness` seconds ago, and
        StoreUninitializedError while the store is not initialised.
        """
        self._fresh_enough()
        self._check_initialized()
        read_at = self._read_at
        stale = read_at is None or self.clock() - read_at > self.revocation_max_staleness
        if self.store_error is not None and stale:
            raise StoreUnavailableError(
                "licenses cannot be checked: the revocation list has not been refreshed for over"
                f" {self.revocation_max_staleness:g} s because the store is unreachable"
            )
        return jti in self._revoked
