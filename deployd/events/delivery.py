"""Webhook delivery: a background thread in every worker, of which one at a time delivers.

Which one: the holder of a short **lease** in the store (`take_webhook_lease`, LEASE_SECONDS,
renewed before every POST). The holder reads the event log after the stored **cursor**, POSTs
each event to every webhook that wants it (retrying with doubling backoff, capped, up to
DEPLOYD_WEBHOOK_ATTEMPTS attempts, then giving up), and moves the cursor past the event with
`advance_webhook_cursor`, which writes only while the caller still holds the lease. So several
workers (and replicas) never send the same event twice, except when a holder stalls past its
lease between renewing it and posting (then the next holder posts the event again): delivery is
at least once, and `Deployd-Event-Id` lets a receiver drop a repeat.

Why a lease and not a claim per event: events are then delivered in order, one POST at a time,
and the state in the store is one cursor rather than a key per event. The price is that a
receiver that is down holds back later events for up to its retries (at most
attempts x MAX_BACKOFF_SECONDS).

The queue is the event log itself: bounded (DEPLOYD_EVENTS_MAX), and events trimmed from it before
they were delivered are counted as `missed`. Counters (in the store, for the whole deployment):
`delivered`, `failed` (attempts that failed), `gave_up`, `missed`. Nothing here runs on a
request: a request only appends to the log.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import weakref
from collections import Counter

import requests

from deployd.errors import DeploydError
from deployd.events.webhooks import WebhookConfig, post_event
from deployd.specs.signing import SpecSigner
from deployd.store import EventRecord, Store

logger = logging.getLogger(__name__)

LEASE_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 30.0
BATCH = 50
INTERVAL_SECONDS = 1.0


class WebhookDeliverer:
    def __init__(
        self,
        store: Store,
        config: WebhookConfig,
        signer: SpecSigner,
        *,
        interval: float = INTERVAL_SECONDS,
    ) -> None:
        self.store = store
        self.config = config
        self.signer = signer
        self.interval = interval
        self.owner = f"{os.getpid()}-{secrets.token_hex(8)}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._session: requests.Session | None = None
        # Where a store that never delivered starts: after the events it held when this server
        # started (webhooks get what happens from now on, not the whole log).
        self._start_after = self._newest_id()

    # -- the thread --

    def ensure_running(self) -> bool:
        """Start the thread in this process unless it runs (a refresher task: always True)."""
        thread = self._thread
        if (thread is not None and thread.is_alive() and self._pid == os.getpid()) or (
            self._stop.is_set()
        ):
            return True
        with self._lock:
            thread = self._thread
            if thread is not None and thread.is_alive() and self._pid == os.getpid():
                return True
            self.owner = f"{os.getpid()}-{secrets.token_hex(8)}"  # a forked child is another
            self._session = None
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=_run, args=(weakref.ref(self),), name="deployd-webhooks", daemon=True
            )
            self._thread.start()
        return True

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and self._pid == os.getpid() and thread.is_alive():
            thread.join(timeout)

    # -- one round --

    def deliver_once(self) -> int:
        """Deliver what is after the cursor, if this worker holds the lease; the events handled."""
        if not self.store.take_webhook_lease(self.owner, seconds=LEASE_SECONDS):
            return 0
        stored = self.store.webhook_state().cursor
        cursor = stored or self._start_after
        events = self.store.read_events(after=cursor, limit=BATCH, oldest_first=True)
        if not events:
            if cursor > stored:  # the first holder writes where delivery starts
                self.store.advance_webhook_cursor(self.owner, cursor, {})
            return 0
        handled = 0
        missed = events[0].id - cursor - 1
        for event in events:
            counts = self._deliver(event)
            if counts is None:
                return handled  # the lease was lost or we are stopping: the next holder goes on
            if missed > 0:
                counts["missed"] += missed
                logger.warning("%d events were trimmed from the log before delivery", missed)
                missed = 0
            if not self.store.advance_webhook_cursor(self.owner, event.id, counts):
                return handled
            handled += 1
        return handled

    def _deliver(self, event: EventRecord) -> Counter[str] | None:
        counts: Counter[str] = Counter()
        for hook in self.config.hooks:
            if not self.config.wants(event):
                continue
            delay = self.config.backoff
            for attempt in range(1, self.config.attempts + 1):
                if self._stop.is_set() or not self._renew():
                    return None
                outcome = post_event(self._http(), hook, event, self.signer)
                if outcome.ok:
                    counts["delivered"] += 1
                    break
                counts["failed"] += 1
                if not outcome.retry or attempt == self.config.attempts:
                    counts["gave_up"] += 1
                    logger.warning(
                        "gave up delivering event %d (%s) to the webhook at %s after %d"
                        " attempts: %s",
                        event.id,
                        event.type,
                        hook.host,
                        attempt,
                        outcome.detail,
                    )
                    break
                if self._stop.wait(delay):
                    return None
                delay = min(delay * 2, MAX_BACKOFF_SECONDS)
        return counts

    def _renew(self) -> bool:
        return self.store.take_webhook_lease(self.owner, seconds=LEASE_SECONDS)

    def _http(self) -> requests.Session:
        if self._session is None:
            self._session = requests.Session()
        return self._session

    def _newest_id(self) -> int:
        try:
            newest = self.store.read_events(limit=1, oldest_first=False)
        except DeploydError:
            return 0
        return newest[0].id if newest else 0


def _run(reference: weakref.ref[WebhookDeliverer]) -> None:
    """The thread: a round every interval while its deliverer exists and is not stopped."""
    while True:
        deliverer = reference()
        if deliverer is None or deliverer._stop.is_set():
            return
        try:
            busy = deliverer.deliver_once() > 0
        except DeploydError as e:
            logger.warning("webhook delivery paused: %s", e.message)
            busy = False
        except Exception:
            logger.exception("webhook delivery failed")
            busy = False
        wake, interval = deliverer._wake, deliverer.interval
        del deliverer  # hold no reference while waiting, so an app that is gone ends the thread
        if not busy:
            wake.wait(interval)
            wake.clear()
