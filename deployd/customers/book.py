"""Every customer record, in one worker's memory: what the poll path reads instead of the store.

The background refresher calls `background_round()` every refresh interval: one read of the
store's customers version and, only when it moved, one read of every record. Requests call
`get`, a dict lookup. The very first `get` of a worker that has not loaded the records yet loads
them (as the first view of the channels is loaded, deployd.server.view); after that requests
never wait on the store. While the store is unreachable the records last read keep applying.
"""

from __future__ import annotations

import logging
import threading

from deployd.customers.records import CustomerRecord
from deployd.errors import StoreUnavailableError
from deployd.store import Store

logger = logging.getLogger(__name__)


class CustomerBook:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._records: dict[str, CustomerRecord] = {}
        self._version: int | None = None  # the customers version `_records` came from
        self._attempted = False  # a load finished (or failed): requests no longer wait
        self._lock = threading.Lock()

    def get(self, subject: str) -> CustomerRecord | None:
        """The record of `subject`, as last read from the store (or None)."""
        if not self._attempted:
            self._first_load()
        return self._records.get(subject)

    def __len__(self) -> int:
        return len(self._records)

    def _first_load(self) -> None:
        with self._lock:
            if not self._attempted:
                self.background_round()

    def background_round(self) -> bool:
        """Reload the records if the store's customers version moved; True when the store
        answered."""
        try:
            version = self.store.customers_version()
            if version != self._version:
                records = {r.subject: r for r in self.store.customers()}
                self._records, self._version = records, version
        except StoreUnavailableError as e:
            if self._attempted:
                logger.debug("customer records not refreshed: %s", e.message)
            else:
                logger.warning("customer records not loaded yet: %s", e.message)
            return False
        finally:
            self._attempted = True
        return True

    def refresh(self) -> None:
        """Read the records again now (after a change made through this worker)."""
        with self._lock:
            self._version = None
            self.background_round()

    def forget(self) -> None:
        """The store was replaced (a reset of the worker's view): reload on the next round."""
        self._version = None
