"""Reporting each reconcile's outcome to the server (`POST /api/v1/operator/report`).

Never in the way: `submit` only puts the report on a bounded queue and returns; a background
thread sends it, retrying a server that is down or busy (network errors, 5xx, 429) with capped,
jittered exponential backoff, and drops it (logged and counted) after `max_attempts` or when the
queue is full. A report the server refuses (another 4xx) is dropped at once. Messages are cut
short and redacted (the license and anything that looks like a secret); the license itself only
ever travels in the Authorization header, to the configured server, without redirects.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from dataclasses import dataclass

import requests

from deployd.client.backoff import Backoff
from deployd.client.redact import mask_secrets
from deployd.client.trust import CATrust, trusting_session
from deployd.protocol import INSTANCE_ID_HEADER, REPORT_PATH, utc_now

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 500


@dataclass(frozen=True)
class OutcomeReport:
    release: str
    outcome: str  # applied, failed, rolled_back
    message: str
    at: str


class ReportSender:
    def __init__(
        self,
        *,
        server: str,
        license: str,
        instance_id: str,
        user_agent: str,
        ca_trust: CATrust | None = None,
        timeout: float = 10.0,
        max_queued: int = 100,
        max_attempts: int = 6,
        backoff_base: float = 1.0,
        backoff_ceiling: float = 60.0,
        rng: random.Random | None = None,
    ) -> None:
        self.url = server.rstrip("/") + REPORT_PATH
        self._license = license
        self.instance_id = instance_id
        self.headers = {INSTANCE_ID_HEADER: instance_id, "User-Agent": user_agent}
        self.timeout = timeout
        self.max_attempts = max_attempts
        self._backoff = Backoff(backoff_base, backoff_ceiling, rng or random.Random())
        self._queue: queue.Queue[OutcomeReport] = queue.Queue(max_queued)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._session = trusting_session(ca_trust)
        self.sent = 0
        self.dropped = 0

    def submit(self, release: str, outcome: str, message: str = "") -> bool:
        """Queue a report for sending (never blocks); False (counted) when the queue is full."""
        report = OutcomeReport(release, outcome, self._redacted(message), utc_now())
        try:
            self._queue.put_nowait(report)
        except queue.Full:
            self._drop(report, "the report queue is full")
            return False
        self._ensure_running()
        return True

    def _redacted(self, message: str) -> str:
        return mask_secrets(message, [self._license])[:MAX_MESSAGE_CHARS]

    def _ensure_running(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="deployd-reports", daemon=True
                )
                self._thread.start()

    def close(self, drain: float = 5.0) -> None:
        """Give what is queued up to `drain` seconds to go out (an agent run with --once exits
        right after its reconcile), then stop and close the session; the rest is dropped.
        Closing again does nothing."""
        if self._stop.is_set():
            return
        deadline = time.monotonic() + drain
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        self._stop.set()
        while True:
            try:
                self._drop(self._queue.get_nowait(), "the agent is stopping")
            except queue.Empty:
                break
        thread = self._thread
        if thread is not None:
            thread.join(drain)
        self._session.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                report = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._deliver(report)
            finally:
                self._queue.task_done()

    def _deliver(self, report: OutcomeReport) -> None:
        for attempt in range(1, self.max_attempts + 1):
            problem, retry = self._send(report)
            if problem is None:
                self.sent += 1
                self._backoff.reset()
                return
            if not retry or attempt == self.max_attempts or self._stop.is_set():
                self._drop(report, problem)
                return
            if self._stop.wait(self._backoff.next_delay()):
                self._drop(report, problem)
                return

    def _send(self, report: OutcomeReport) -> tuple[str | None, bool]:
        """(None, _) when the server took it, else (why, whether trying again may help)."""
        body = {
            "instance": self.instance_id,
            "release": report.release,
            "outcome": report.outcome,
            "message": report.message,
            "at": report.at,
        }
        try:
            response = self._session.post(
                self.url,
                json=body,
                headers=self.headers,
                auth=requests.auth.HTTPBasicAuth("license", self._license),
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as e:
            return f"cannot reach the server: {type(e).__name__}", True
        if response.status_code < 300:
            return None, False
        retry = response.status_code == 429 or response.status_code >= 500
        return f"the server answered {response.status_code}", retry

    def _drop(self, report: OutcomeReport, why: str) -> None:
        self.dropped += 1
        logger.warning(
            "dropped the %s report of release %s: %s (%d dropped so far)",
            report.outcome,
            report.release,
            why,
            self.dropped,
        )
