"""The polling loop: ask the server (or read an offline bundle), verify, remember, reconcile.

Decisions worth knowing:

- A spec is handed on only after `verify_spec` accepted it. Whatever goes wrong (server down, 5xx,
  a refused license, a spec that fails verification), the client keeps the last good spec, says so
  in a log line, and never tears anything down.
- The last accepted spec is cached on disk and re-verified on load, expiry included: an expired
  cached spec (freeze) is never handed to the reconciler again. The state it produced stays
  deployed as it is until the server answers with a fresh spec; nothing is removed.
- The reconciler is called when the merged desired state differs from the one last applied
  (`applied.json`), when the last call failed, and once when `run` starts (a fresh process cannot
  know whether a previous call was interrupted or the deployment drifted). A state is recorded as
  applied only after a call succeeded.
- A `Poller` is used from one thread at a time.
"""

from __future__ import annotations

import json
import logging
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from deployd import __version__
from deployd.client.backoff import Backoff, jittered, parse_retry_after
from deployd.client.cache import AppliedState, CacheDir, SpecBundle, parse_bundle
from deployd.client.config import ClientConfig
from deployd.client.errors import FetchError, InputError, ReconcileError, SpecRefusedError
from deployd.client.fetch import Fetcher, HttpFetcher, HttpResponse
from deployd.client.hierarchy import RELEASE_PIN_KEY, DesiredState, desired_state
from deployd.client.inputs import CustomResource
from deployd.client.licensing import unverified_claims
from deployd.client.reconcilers import Reconciler
from deployd.client.reporting import ReportSender
from deployd.client.verify import (
    DOWNGRADE,
    ROLLBACK,
    Floor,
    VerifiedSpec,
    raise_floor,
    verify_spec,
)
from deployd.offline import reading as offline_reading
from deployd.offline.archive import read_file
from deployd.offline.errors import UNREADABLE, BundleRefusedError
from deployd.protocol import (
    AGENT_VERSION_HEADER,
    CURRENT_VERSION_HEADER,
    INSTANCE_ID_HEADER,
    KUBERNETES_VERSION_HEADER,
    SIGNATURE_HEADER,
    SPEC_PATH,
    pinned_spec_path,
    rfc3339,
)
from deployd.values import deep_merge

logger = logging.getLogger(__name__)

USER_AGENT = f"deployd-client/{__version__}"
# The outcomes reported after a reconcile (deployd.rollouts.records names them on the server).
APPLIED_OUTCOME, FAILED_OUTCOME = "applied", "failed"
MAX_ERROR_MESSAGE_CHARS = 300
_ERROR_CODE = re.compile(r"^[a-z0-9_]{1,64}$")


class PollOutcome(StrEnum):
    UPDATED = "updated"  # a new spec was verified and accepted
    NOT_MODIFIED = "not_modified"  # the held spec is still current (304, or the same bytes)
    UNAVAILABLE = "unavailable"  # no usable answer: network, timeout, oversize, 5xx, 429
    DENIED = "denied"  # the server turned the request down: license, unknown channel/release
    REFUSED = "refused"  # the answer failed verification


@dataclass(frozen=True)
class PollResult:
    """What one poll found. `spec` is the spec the client holds now: the new one, or the last good
    one kept after a failure, or None when it has none (or the one it had expired)."""

    outcome: PollOutcome
    spec: VerifiedSpec | None
    reason: str | None = None
    message: str | None = None
    retry_after: float | None = None

    @property
    def fresh(self) -> bool:
        """True when the server (or bundle) confirmed `spec` in this poll."""
        return self.outcome in (PollOutcome.UPDATED, PollOutcome.NOT_MODIFIED)


class SyncAction(StrEnum):
    APPLIED = "applied"  # the reconciler was called and succeeded
    UNCHANGED = "unchanged"  # the desired state is the one already applied
    FAILED = "failed"  # the reconciler was called and failed; it will be retried
    NO_SPEC = "no_spec"  # there is no good spec to reconcile to; nothing was touched


@dataclass(frozen=True)
class SyncResult:
    """One poll followed, when needed, by one reconciler call."""

    poll: PollResult
    action: SyncAction
    desired: DesiredState | None = None
    message: str | None = None


class Poller:
    """Follows one channel (or one pinned release) for one deployment.

    `user_values` and `custom_resource` are the upper levels of the hierarchy
    (`channel < user input < custom resource`). `fetcher`, `clock` (seconds since the epoch) and
    `rng` can be replaced in tests.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        user_values: Mapping[str, Any] | None = None,
        custom_resource: CustomResource | None = None,
        fetcher: Fetcher | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        reporter: ReportSender | None = None,
    ) -> None:
        self.config = config
        self.reporter = reporter
        self.user_values = dict(user_values or {})
        self.custom_resource = custom_resource
        self.clock = clock
        self.rng = rng or random.Random()
        self.pinned_release = config.release or _pin_from_inputs(self.user_values, custom_resource)
        self.expected_channel = config.expected_channel
        self.cache = CacheDir(config.cache_dir, max_body_bytes=config.max_body_bytes)
        if fetcher is None and config.server is not None:
            fetcher = HttpFetcher(
                connect_timeout=config.connect_timeout,
                read_timeout=config.read_timeout,
                total_timeout=config.total_timeout,
                max_body_bytes=config.max_body_bytes,
                ca_trust=config.ca_trust,
            )
        self._fetcher = fetcher
        self._instance_id: str | None = config.instance_id
        self._poll_backoff = Backoff(config.backoff_base, config.backoff_ceiling, self.rng)
        self._reconcile_backoff = Backoff(config.backoff_base, config.backoff_ceiling, self.rng)
        self._floors: dict[str, Floor] = {}
        self._floors_lost = False
        self._held: VerifiedSpec | None = None
        self._held_etag: str | None = None
        self._applied: AppliedState | None = None
        self._last_call_failed = False
        self._why_no_spec = "no good spec is held yet"
        if config.sends_license_in_clear:
            logger.warning("the license is sent over plain http to %s; use https", config.server)
        self._load_memory()

    # --- what the client remembers -------------------------------------------------------------

    @property
    def held_spec(self) -> VerifiedSpec | None:
        """The last good spec (None before the first one, or once it expired)."""
        return self._held

    @property
    def applied(self) -> AppliedState | None:
        """The state the reconciler last applied successfully (survives restarts)."""
        return self._applied

    @property
    def current_version(self) -> str | None:
        """The release last applied, sent as `Deployd-Current-Version`; None before the first."""
        return self._applied.release if self._applied is not None else None

    @property
    def url(self) -> str | None:
        """The URL polled: the channel, or the pinned release."""
        if self.config.server is None:
            return None
        path = SPEC_PATH
        if self.pinned_release is not None:
            path = pinned_spec_path(self.pinned_release)
        query = "?" + urlencode({"channel": self.config.channel}) if self.config.channel else ""
        return self.config.server.rstrip("/") + path + query

    def _load_memory(self) -> None:
        try:
            self._floors = self.cache.load_sequences()
        except InputError as e:
            logger.error("%s; rollback floors rebuilt from the cached spec", e.message)
            self._floors_lost = True
        try:
            self._applied = self.cache.load_applied()
        except InputError as e:
            logger.error("%s; the next good spec will be applied again", e.message)
        try:
            bundle = self.cache.load_spec()
        except InputError as e:
            logger.warning("ignoring the cached spec: %s", e.message)
            return
        if bundle is None:
            return
        try:
            spec = self._verify(bundle.body, bundle.signature, self.clock())
        except SpecRefusedError as e:
            logger.warning("not using the cached spec (%s): %s", e.reason, e.message)
            self._why_no_spec = f"the cached spec is not usable ({e.reason})"
            return
        self._held, self._held_etag = spec, bundle.etag
        if self._raise_floor(spec) or self._floors_lost:
            self._save_floors()
        logger.info(
            "loaded cached spec: channel %s, release %s, sequence %d, expires %s",
            spec.channel,
            spec.release,
            spec.sequence,
            spec.metadata["expires"],
        )

    def _save_floors(self) -> None:
        try:
            self.cache.save_sequences(self._floors)
            self._floors_lost = False
        except OSError as e:
            logger.error("cannot write the rollback floors in %s: %s", self.cache.path, e.strerror)

    def _raise_floor(self, spec: VerifiedSpec) -> bool:
        floor = self._floors.get(spec.channel)
        raised = raise_floor(floor, spec, pinned=self.pinned_release is not None)
        if raised == floor:
            return False
        self._floors[spec.channel] = raised
        return True

    def _verify(self, body: bytes, signature: str | None, now: float) -> VerifiedSpec:
        return verify_spec(
            body,
            signature,
            trusted_keys=self.config.trusted_keys,
            now=now,
            expected_channel=self.expected_channel,
            pinned_release=self.pinned_release,
            floors=self._floors,
        )

    # --- polling -------------------------------------------------------------------------------

    def poll_once(self) -> PollResult:
        """Ask the server (or read the offline bundle) once. Never raises for a failed poll: the
        result says what happened and carries the spec the client holds now."""
        now = self.clock()
        if self._held is not None and self._held.is_expired(now):
            logger.warning(
                "the held spec (release %s) expired at %s; it is not handed on again until a"
                " fresh spec arrives, and what it deployed stays as it is",
                self._held.release,
                self._held.metadata["expires"],
            )
            self._why_no_spec = f"the last good spec expired at {self._held.metadata['expires']}"
            self._held, self._held_etag = None, None
        if self.config.offline_bundle is not None:
            return self._poll_bundle(Path(self.config.offline_bundle), now)
        if self.config.offline_spec is not None:
            return self._poll_offline(Path(self.config.offline_spec), now)
        return self._poll_server(now)

    @property
    def instance_id(self) -> str:
        """The id this client sends as Deployd-Instance-Id, with its polls and its reports: the
        one given, else the one kept in the cache directory (made there on first use)."""
        if self._instance_id is None:
            try:
                self._instance_id = self.cache.instance_id()
            except (OSError, InputError) as e:
                # Still one id for this process's life: the server then sees a new instance
                # after a restart, which is better than none.
                logger.error("cannot keep the instance id in %s: %s", self.cache.path, e)
                self._instance_id = secrets.token_hex(16)
        return self._instance_id

    def _instance_headers(self) -> dict[str, str]:
        """Who polls: the instance id, this client's version and, when known, the cluster's
        Kubernetes version."""
        headers = {INSTANCE_ID_HEADER: self.instance_id, AGENT_VERSION_HEADER: __version__}
        if self.config.kubernetes_version:
            headers[KUBERNETES_VERSION_HEADER] = self.config.kubernetes_version
        return headers

    def _poll_server(self, now: float) -> PollResult:
        assert self._fetcher is not None and self.url is not None
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        headers.update(self._instance_headers())
        if self._held is not None and self._held_etag:
            headers["If-None-Match"] = self._held_etag
        if self.current_version:
            headers[CURRENT_VERSION_HEADER] = self.current_version
        try:
            response = self._fetcher.get(self.url, headers=headers, license=self.config.license)
        except FetchError as e:
            return self._keep(PollOutcome.UNAVAILABLE, e.reason, e.message, e.retry_after)
        if response.status == 304:
            if self._held is None:
                return self._keep(
                    PollOutcome.REFUSED,
                    "unexpected_304",
                    "the server answered 304 to a request without If-None-Match",
                )
            return PollResult(PollOutcome.NOT_MODIFIED, self._held)
        if response.status == 200:
            return self._consider(
                response.body,
                response.headers.get(SIGNATURE_HEADER.lower()),
                response.headers.get("etag"),
                now,
                source="the server",
            )
        return self._http_error(response, now)

    def _http_error(self, response: HttpResponse, now: float) -> PollResult:
        status = response.status
        code, text = error_details(response)
        if 300 <= status < 400:
            location = response.headers.get("location", "?")[:MAX_ERROR_MESSAGE_CHARS]
            message = f"the server redirects to {location}; set --server to the final URL"
            return self._keep(PollOutcome.DENIED, "redirect", message)
        message = f"the server answered {status}" + (f" ({code}): {text}" if code else f": {text}")
        reason = code or f"http_{status}"
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(response.headers.get("retry-after"), now)
            return self._keep(PollOutcome.UNAVAILABLE, reason, message, retry_after)
        return self._keep(PollOutcome.DENIED, reason, message)

    def _poll_offline(self, path: Path, now: float) -> PollResult:
        limit = 2 * self.config.max_body_bytes + 65_536
        try:
            with path.open("rb") as f:
                data = f.read(limit + 1)
        except OSError as e:
            message = f"cannot read the offline spec {path}: {e.strerror}"
            return self._keep(PollOutcome.UNAVAILABLE, "offline_unreadable", message)
        try:
            bundle = parse_bundle(data, max_body_bytes=self.config.max_body_bytes, source=str(path))
        except InputError as e:
            return self._keep(PollOutcome.REFUSED, "malformed_bundle", e.message)
        return self._consider(
            bundle.body, bundle.signature, bundle.etag, now, source=f"the offline spec {path}"
        )

    def _poll_bundle(self, path: Path, now: float) -> PollResult:
        source = f"the offline bundle {path}"
        try:
            spec = self.bundle_spec(read_file(path), now)
        except BundleRefusedError as e:
            if e.reason == UNREADABLE:  # like an offline spec that cannot be read
                return self._keep(PollOutcome.UNAVAILABLE, e.reason, e.message)
            return self._keep(PollOutcome.REFUSED, e.reason, f"refused {source}: {e.message}")
        return self._consider(spec.body, spec.signature, None, now, source=source)

    def open_bundle(self, data: bytes, now: float) -> offline_reading.OpenedBundle:
        """The offline bundle in `data`, checked for this client: its pinned keys, its
        license's subject, its channel (BundleRefusedError otherwise). Changes nothing."""
        subject = unverified_claims(self.config.license or "").get("sub")
        return offline_reading.open_bundle(
            data,
            trusted_keys=self.config.trusted_keys,
            license_subject=subject if isinstance(subject, str) else "",
            expected_channel=self.expected_channel,
            now=now,
            max_body_bytes=self.config.max_body_bytes,
        )

    def bundle_spec(self, data: bytes, now: float) -> VerifiedSpec:
        """The spec of the offline bundle in `data` this client would apply next: the pinned
        release's, else the next step from the release it runs, checked as a server's answer
        is (rollback floors included). BundleRefusedError when the bundle or that spec is
        refused; changes nothing."""
        opened = self.open_bundle(data, now)
        chosen = opened.choose(
            current_version=self.current_version, pinned_release=self.pinned_release
        )
        try:
            return self._verify(chosen.body, chosen.signature, now)
        except SpecRefusedError as e:
            older = e.reason in (ROLLBACK, DOWNGRADE)
            prefix = "the bundle is older than what this agent accepted: " if older else ""
            raise BundleRefusedError(e.reason, prefix + e.message) from e

    def _consider(
        self, body: bytes, signature: str | None, etag: str | None, now: float, *, source: str
    ) -> PollResult:
        try:
            spec = self._verify(body, signature, now)
        except SpecRefusedError as e:
            return self._keep(PollOutcome.REFUSED, e.reason, f"refused the spec from {source}: {e}")
        if self._held is not None and self._held.body == body and self._held_etag == etag:
            return PollResult(PollOutcome.NOT_MODIFIED, self._held)
        self._held, self._held_etag = spec, etag
        raised = self._raise_floor(spec)
        try:
            self.cache.save_spec(SpecBundle(spec.body, spec.signature, etag))
        except OSError as e:
            logger.error(
                "cannot write the cache in %s (%s): the accepted spec is kept in memory only",
                self.cache.path,
                e.strerror,
            )
        if raised or self._floors_lost:
            self._save_floors()
        logger.info(
            "accepted spec from %s: channel %s, release %s, sequence %d, key %s, expires %s",
            source,
            spec.channel,
            spec.release,
            spec.sequence,
            spec.key_id,
            spec.metadata["expires"],
        )
        return PollResult(PollOutcome.UPDATED, spec)

    def _keep(
        self,
        outcome: PollOutcome,
        reason: str,
        message: str,
        retry_after: float | None = None,
    ) -> PollResult:
        held = self._held
        failed = outcome in (PollOutcome.REFUSED, PollOutcome.DENIED)
        level = logging.ERROR if failed else logging.WARNING
        if held is not None:
            logger.log(
                level,
                "%s; keeping the last good spec (channel %s, release %s, sequence %d)",
                message,
                held.channel,
                held.release,
                held.sequence,
            )
        else:
            logger.log(level, "%s; %s", message, self._why_no_spec)
        return PollResult(outcome, held, reason, message, retry_after)

    # --- reconciling ---------------------------------------------------------------------------

    def sync_once(self, reconciler: Reconciler, *, force: bool = False) -> SyncResult:
        """Poll once, merge the hierarchy and call `reconciler` if the desired state changed
        (or the last call failed, or `force`). Exceptions from the reconciler become FAILED."""
        poll = self.poll_once()
        if poll.spec is None:
            message = f"{poll.message}; {self._why_no_spec}"
            if self._applied is not None:
                message += f"; release {self._applied.release} stays deployed as it is"
            else:
                message += "; nothing was deployed"
            return SyncResult(poll, SyncAction.NO_SPEC, None, message)
        desired = desired_state(
            poll.spec, user_values=self.user_values, custom_resource=self.custom_resource
        )
        applied = self._applied
        if (
            not force
            and not self._last_call_failed
            and applied is not None
            and applied.desired.digest == desired.digest
        ):
            return SyncResult(poll, SyncAction.UNCHANGED, desired)
        previous = applied.desired if applied is not None else None
        logger.info(
            "reconciling to release %s (channel %s, sequence %s)",
            desired.release,
            desired.channel,
            desired.metadata.get("sequence"),
        )
        try:
            reconciler.reconcile(desired, previous)
        except Exception as e:
            self._last_call_failed = True
            message = e.message if isinstance(e, ReconcileError) else f"{type(e).__name__}: {e}"
            logger.error("reconciling release %s failed: %s", desired.release, message)
            self._report(desired.release, FAILED_OUTCOME, message)
            return SyncResult(poll, SyncAction.FAILED, desired, message)
        self._last_call_failed = False
        self._applied = AppliedState(desired, rfc3339(self.clock()))
        try:
            self.cache.save_applied(self._applied)
        except OSError as e:
            logger.error("cannot record the applied state in %s: %s", self.cache.path, e.strerror)
        logger.info("applied release %s", desired.release)
        self._report(desired.release, APPLIED_OUTCOME, "")
        return SyncResult(poll, SyncAction.APPLIED, desired)

    def _report(self, release: str, outcome: str, message: str) -> None:
        """Tell the server how a reconcile went (queued; sent in the background)."""
        if self.reporter is not None:
            self.reporter.submit(release, outcome, message)

    def run(self, reconciler: Reconciler, stop_event: threading.Event) -> None:
        """Poll and reconcile until `stop_event` is set.

        Between polls it waits the jittered poll interval; after failures, exponential backoff
        with full jitter (at least `Retry-After` when the server sent one, up to
        `max_retry_after`); right after applying a new spec it polls again at once, so required
        releases are stepped through without waiting an interval each.
        """
        force = self.config.reconcile_on_start
        while not stop_event.is_set():
            result = self.sync_once(reconciler, force=force)
            if result.desired is not None:
                force = False
            stop_event.wait(self.next_delay(result))

    def set_user_values(self, user_values: Mapping[str, Any]) -> None:
        """Replace the user-input level (and the `_releaseId` pin it may carry); the next
        `sync_once` merges with it. Raises InputError, changing nothing, for a bad pin."""
        pin = self.pin_for(user_values)
        self.user_values = dict(user_values)
        self.pinned_release = pin

    def pin_for(self, user_values: Mapping[str, Any]) -> str | None:
        """The release `set_user_values(user_values)` would pin (the command line's pin wins).
        Raises InputError for a bad pin."""
        return self.config.release or _pin_from_inputs(user_values, self.custom_resource)

    def next_delay(self, result: SyncResult) -> float:
        """Seconds to wait before the next poll after `result` (interval, backoff, Retry-After,
        or 0 right after applying a new spec)."""
        delays: list[float] = []
        if result.action is SyncAction.FAILED:
            delays.append(self._reconcile_backoff.next_delay())
        else:
            self._reconcile_backoff.reset()
        if not result.poll.fresh:
            delays.append(self._poll_backoff.next_delay())
            if result.poll.retry_after is not None:
                delays.append(min(result.poll.retry_after, self.config.max_retry_after))
        else:
            self._poll_backoff.reset()
        if delays:
            return max(delays)
        if result.action is SyncAction.APPLIED and result.poll.outcome is PollOutcome.UPDATED:
            return 0.0
        return jittered(self.config.poll_interval, self.config.interval_jitter, self.rng)

    def close(self) -> None:
        """Release the network session (and stop reporting)."""
        if self._fetcher is not None:
            self._fetcher.close()
        if self.reporter is not None:
            self.reporter.close()

    def __enter__(self) -> Poller:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _pin_from_inputs(
    user_values: Mapping[str, Any], custom_resource: CustomResource | None
) -> str | None:
    merged = deep_merge(user_values, custom_resource.values if custom_resource else {})
    pin = merged.get(RELEASE_PIN_KEY)
    if pin is None:
        return None
    if not isinstance(pin, str) or not pin.strip():
        raise InputError(f"{RELEASE_PIN_KEY} must be a release id string, not {pin!r}")
    return pin.strip()


def error_details(response: HttpResponse) -> tuple[str | None, str]:
    """The `error.code` and a printable `error.message` of an error answer, if it has them."""
    try:
        error = json.loads(response.body).get("error", {})
        code, message = error.get("code"), error.get("message")
    except (ValueError, AttributeError):
        code, message = None, None
    if not isinstance(code, str) or not _ERROR_CODE.match(code):
        code = None
    if not isinstance(message, str) or not message:
        message = response.body[:MAX_ERROR_MESSAGE_CHARS].decode("utf-8", "replace") or "no body"
    printable = "".join(ch if ch.isprintable() else " " for ch in message)
    return code, printable[:MAX_ERROR_MESSAGE_CHARS]
