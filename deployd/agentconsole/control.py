"""The agent's loop with a hand on it: what the console shows (status) and what it may ask for
(apply now, pause, resume, new user values).

The loop runs in the agent's main thread exactly like `Poller.run`; the console's thread only
sets flags and reads a snapshot, each under a lock held for a few assignments, so the console
never blocks a poll and a poll never blocks a page. New user values are handed over and taken
in between two cycles, never during one. While paused the agent keeps polling (the status
stays fresh) but calls no reconciler, unless an administrator asks to apply now.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from deployd.client.poller import Poller, PollResult, SyncAction, SyncResult
from deployd.client.reconcilers import Reconciler

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentStatus:
    """A snapshot of the loop: times are seconds since the epoch (None: not yet)."""

    paused: bool = False
    last_poll_at: float | None = None
    last_poll_outcome: str | None = None
    last_poll_message: str | None = None
    last_reconcile_at: float | None = None
    last_reconcile_action: str | None = None
    last_reconcile_message: str | None = None
    next_poll_at: float | None = None


class AgentControl:
    def __init__(
        self,
        poller: Poller,
        reconciler: Reconciler,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.poller = poller
        self.reconciler = reconciler
        self.clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._status = AgentStatus()
        self._apply_now = False
        self._pending_values: dict[str, Any] | None = None

    # --- asked for by the console (any thread) -------------------------------------------------

    @property
    def status(self) -> AgentStatus:
        with self._lock:
            return self._status

    @property
    def pinned_release(self) -> str | None:
        """The release pinned from the next cycle on: the one in values handed over and not yet
        taken by the loop, else the poller's. A page shown right after a pin shows that pin."""
        with self._lock:
            pending = self._pending_values
        return self.poller.pinned_release if pending is None else self.poller.pin_for(pending)

    def apply_now(self) -> None:
        """Poll and reconcile at once, even when paused or when nothing changed."""
        with self._lock:
            self._apply_now = True
        self._wake.set()

    def pause(self) -> None:
        self._set_paused(True)

    def resume(self) -> None:
        self._set_paused(False)
        self._wake.set()

    def set_user_values(self, values: Mapping[str, Any]) -> None:
        """Use `values` as the user-input level from the next cycle on (which starts now)."""
        with self._lock:
            self._pending_values = dict(values)
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def _set_paused(self, paused: bool) -> None:
        with self._lock:
            self._status = replace(self._status, paused=paused)
        logger.info("updates %s from the system console", "paused" if paused else "resumed")

    # --- the loop (the agent's main thread) ----------------------------------------------------

    def run(self) -> None:
        """Poll and reconcile until `stop`, as `Poller.run` does, obeying the console."""
        force = self.poller.config.reconcile_on_start
        while not self._stopped.is_set():
            self._wake.clear()
            apply_now, paused = self._take_requests()
            if paused and not apply_now:
                result = SyncResult(self._poll_only(), SyncAction.UNCHANGED)
            else:
                result = self.poller.sync_once(self.reconciler, force=force or apply_now)
                if result.desired is not None:
                    force = False
            self._record(result)
            self._wake.wait(self._delay_after(result))

    def _take_requests(self) -> tuple[bool, bool]:
        with self._lock:
            apply_now, self._apply_now = self._apply_now, False
            values, self._pending_values = self._pending_values, None
            paused = self._status.paused
        if values is not None:
            self.poller.set_user_values(values)
            logger.info("using the user values saved in the system console")
        return apply_now, paused

    def _poll_only(self) -> PollResult:
        return self.poller.poll_once()

    def _delay_after(self, result: SyncResult) -> float:
        delay = self.poller.next_delay(result)
        with self._lock:
            self._status = replace(self._status, next_poll_at=self.clock() + delay)
        return delay

    def _record(self, result: SyncResult) -> None:
        now = self.clock()
        changes: dict[str, Any] = {
            "last_poll_at": now,
            "last_poll_outcome": str(result.poll.outcome),
            "last_poll_message": result.poll.message,
        }
        if result.action in (SyncAction.APPLIED, SyncAction.FAILED):
            changes.update(
                last_reconcile_at=now,
                last_reconcile_action=str(result.action),
                last_reconcile_message=result.message,
            )
        with self._lock:
            self._status = replace(self._status, **changes)
