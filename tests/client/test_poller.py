"""The poller's logic against a scripted HTTP server and offline bundles (signed test specs)."""

from __future__ import annotations

import base64
import logging
import threading
import time

import pytest

from deployd.client.errors import InputError
from deployd.client.inputs import CustomResource
from deployd.client.poller import Poller, PollOutcome, SyncAction
from deployd.client.reconcilers import CallableReconciler
from tests.client.faultserver import error, hang_up, serve
from tests.client.specs import DAY
from tests.support.polling import LICENSE, Recorder, eventually, run_until


def served(signer, etag='"e1"', **fields):
    bundle = signer.bundle(**fields)
    return serve(bundle.body, bundle.signature, etag), bundle


def poller_for(fault_server, make_config, **overrides):
    overrides.setdefault("server", fault_server.url)
    overrides.setdefault("license", LICENSE)
    inputs = {
        k: overrides.pop(k) for k in ("user_values", "custom_resource", "clock") if k in overrides
    }
    return Poller(make_config(**overrides), **inputs)


def test_the_first_poll_authenticates_and_announces_itself(fault_server, make_config, signer):
    behaviour, bundle = served(signer)
    fault_server.script(behaviour)
    with poller_for(fault_server, make_config) as poller:
        result = poller.poll_once()
    assert result.outcome is PollOutcome.UPDATED and result.spec.body == bundle.body
    request = fault_server.requests[0]
    assert (request.method, request.path) == ("GET", "/api/v1/operator/channel")
    expected = base64.b64encode(f"license:{LICENSE}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert request.headers["User-Agent"].startswith("deployd-client/")
    assert "If-None-Match" not in request.headers
    assert "Deployd-Current-Version" not in request.headers


def test_the_second_poll_sends_the_etag_and_a_304_keeps_the_spec(fault_server, make_config, signer):
    behaviour, _ = served(signer, etag='"abc"')
    fault_server.script(behaviour)
    with poller_for(fault_server, make_config) as poller:
        first = poller.poll_once()
        second = poller.poll_once()
    assert second.outcome is PollOutcome.NOT_MODIFIED and second.spec is first.spec
    assert fault_server.requests[1].headers["If-None-Match"] == '"abc"'


def test_the_applied_release_is_reported_on_later_polls(fault_server, make_config, signer):
    behaviour, _ = served(signer, release="1.1.0")
    fault_server.script(behaviour)
    with poller_for(fault_server, make_config) as poller:
        assert poller.sync_once(Recorder()).action is SyncAction.APPLIED
        poller.poll_once()
    assert fault_server.requests[1].headers["Deployd-Current-Version"] == "1.1.0"


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"channel": "beta"}, "/api/v1/operator/channel?channel=beta"),
        ({"release": "1.0.0"}, "/api/v1/operator/channel/release/1.0.0"),
        ({"user_values": {"_releaseId": "1.0.0"}}, "/api/v1/operator/channel/release/1.0.0"),
        (
            {"custom_resource": CustomResource.from_values({"_releaseId": "2.0.0+b/1"})},
            "/api/v1/operator/channel/release/2.0.0%2Bb%2F1",
        ),
        (
            {"release": "1.0.0", "channel": "beta", "user_values": {"_releaseId": "9.9.9"}},
            "/api/v1/operator/channel/release/1.0.0?channel=beta",
        ),
    ],
)
def test_the_url_follows_channel_and_pin(fault_server, make_config, overrides, path):
    with poller_for(fault_server, make_config, **overrides) as poller:
        assert poller.url == fault_server.url + path


@pytest.mark.parametrize("pin", [5, "", ["1.0.0"]])
def test_a_bad_release_pin_in_the_values_is_refused(fault_server, make_config, pin):
    with pytest.raises(InputError, match="_releaseId"):
        poller_for(fault_server, make_config, user_values={"_releaseId": pin})


@pytest.mark.parametrize(
    ("behaviour", "outcome", "reason", "retry_after"),
    [
        (error(500, "internal", "boom"), PollOutcome.UNAVAILABLE, "internal", None),
        (
            error(503, "store_unavailable", "later", "7"),
            PollOutcome.UNAVAILABLE,
            "store_unavailable",
            7,
        ),
        (
            error(429, "rate_limited", "slow down", "30"),
            PollOutcome.UNAVAILABLE,
            "rate_limited",
            30,
        ),
        (error(401, "expired", "license expired"), PollOutcome.DENIED, "expired", None),
        (error(404, "unknown_channel", "no channel"), PollOutcome.DENIED, "unknown_channel", None),
        (error(302, "x", "x"), PollOutcome.DENIED, "redirect", None),
        (serve(b"", None, None), PollOutcome.REFUSED, "missing_signature", None),
        (hang_up, PollOutcome.UNAVAILABLE, "unreachable", None),
    ],
)
def test_failed_polls_keep_the_last_good_spec(
    fault_server, make_config, signer, behaviour, outcome, reason, retry_after
):
    good, _ = served(signer)
    fault_server.script(good, behaviour)
    with poller_for(fault_server, make_config) as poller:
        held = poller.poll_once().spec
        result = poller.poll_once()
    assert (result.outcome, result.reason, result.retry_after) == (outcome, reason, retry_after)
    assert result.spec is held and not result.fresh


def not_modified(handler):
    handler.send_response(304)
    handler.send_header("ETag", '"x"')
    handler.end_headers()


def test_a_304_without_a_held_spec_is_refused(fault_server, make_config):
    fault_server.script(not_modified)
    with poller_for(fault_server, make_config) as poller:
        result = poller.poll_once()
    assert (result.outcome, result.reason) == (PollOutcome.REFUSED, "unexpected_304")
    assert result.spec is None


def test_the_license_never_reaches_the_logs(fault_server, make_config, signer, caplog):
    caplog.set_level(logging.DEBUG)
    good, _ = served(signer)
    fault_server.script(error(401, "bad_signature", "bad license"), good, error(500, "x", "y"))
    with poller_for(fault_server, make_config) as poller:
        for _ in range(3):
            poller.sync_once(Recorder())
    assert caplog.records and LICENSE not in caplog.text
    assert base64.b64encode(f"license:{LICENSE}".encode()).decode() not in caplog.text


# --- reconciling --------------------------------------------------------------------------------


def test_the_reconciler_is_called_only_when_the_desired_state_changes(
    fault_server, make_config, signer
):
    now = time.time()
    first, _ = served(signer, etag='"1"', sequence=1)
    resigned, _ = served(signer, etag='"2"', sequence=2, issued_at=now, expires=now + DAY)
    newer, _ = served(signer, etag='"3"', sequence=3, release="1.1.0")
    fault_server.script(first, first, resigned, newer)
    recorder = Recorder()
    with poller_for(fault_server, make_config) as poller:
        actions = [poller.sync_once(recorder).action for _ in range(4)]
    assert actions == ["applied", "unchanged", "unchanged", "applied"]
    assert [d.release for d, _ in recorder.calls] == ["1.0.0", "1.1.0"]
    assert recorder.calls[1][1] == recorder.calls[0][0]  # `previous` is what was applied


def test_user_input_and_custom_resource_reach_the_reconciler(fault_server, make_config, signer):
    behaviour, _ = served(signer, values={"app": {"tag": "1"}, "global": {"a": "channel"}})
    fault_server.script(behaviour)
    recorder = Recorder()
    cr = CustomResource("v1", "WeightsAndBiases", "w", {"path": "/c"}, {"global": {"a": "cr"}})
    user = {"global": {"a": "user", "b": "user"}}
    with poller_for(fault_server, make_config, user_values=user, custom_resource=cr) as poller:
        poller.sync_once(recorder)
    desired = recorder.calls[0][0]
    assert desired.values == {"app": {"tag": "1"}, "global": {"a": "cr", "b": "user"}}
    assert desired.chart == {"path": "/c"}


def test_a_failed_call_is_not_recorded_and_is_retried(fault_server, make_config, signer):
    behaviour, _ = served(signer)
    fault_server.script(behaviour)
    recorder = Recorder(failures=1)
    with poller_for(fault_server, make_config) as poller:
        failed = poller.sync_once(recorder)
        assert failed.action is SyncAction.FAILED and "attempt 1 failed" in failed.message
        assert poller.current_version is None and poller.applied is None
        assert poller.sync_once(recorder).action is SyncAction.APPLIED
        assert poller.current_version == "1.0.0"
        assert poller.sync_once(recorder).action is SyncAction.UNCHANGED
    assert len(recorder.calls) == 2


def test_any_exception_from_a_reconciler_is_a_failure(fault_server, make_config, signer):
    behaviour, _ = served(signer)
    fault_server.script(behaviour)

    def broken(desired, previous):
        raise KeyError("chart")

    with poller_for(fault_server, make_config) as poller:
        result = poller.sync_once(CallableReconciler(broken))
    assert result.action is SyncAction.FAILED and result.message == "KeyError: 'chart'"


def test_run_retries_a_failing_reconciler_with_backoff_until_it_succeeds(
    fault_server, make_config, signer
):
    behaviour, _ = served(signer)
    fault_server.script(behaviour)
    recorder = Recorder(failures=2)
    with poller_for(fault_server, make_config) as poller:
        run_until(poller, recorder, lambda: poller.applied is not None)
    assert len(recorder.calls) == 3
    assert poller.cache.load_applied().release == "1.0.0"


class RecordedWaits(threading.Event):
    """A stop event that records every wait `Poller.run` asks of it (and waits as asked)."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.waits.append(timeout)
        return super().wait(timeout)


def waits_asked(poller, count: int) -> list[float]:
    """The first `count` waits `poller.run` asks for between its polls."""
    stop = RecordedWaits()
    thread = threading.Thread(target=poller.run, args=(Recorder(), stop))
    thread.start()
    try:
        eventually(lambda: len(stop.waits) >= count)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    return stop.waits


def test_run_backs_off_after_errors_and_honours_retry_after_up_to_its_limit(
    fault_server, make_config
):
    # Judged on the waits the poller asks for, not on wall-clock gaps (a busy machine
    # stretches those).
    fault_server.script(
        error(500, "internal", "boom"),
        error(500, "internal", "boom"),
        error(503, "store_unavailable", "later", retry_after="1"),
    )
    with poller_for(fault_server, make_config, max_retry_after=0.3) as poller:
        waits = waits_asked(poller, 4)
    assert all(wait <= 0.05 for wait in waits[:2]), waits  # backoff ceiling 0.05
    assert all(0.3 <= wait for wait in waits[2:4]), waits  # Retry-After (1 s), capped at 0.3


def test_run_waits_the_jittered_poll_interval_between_good_polls(fault_server, make_config, signer):
    # Judged on the waits the poller asks for, not on wall-clock gaps between requests (a busy
    # machine stretches those: 0.16 s for a "poll at once" in one loaded run).
    behaviour, _ = served(signer)
    fault_server.script(behaviour)
    with poller_for(fault_server, make_config, poll_interval=0.2) as poller:
        waits = waits_asked(poller, 4)
    # The first answer is applied and polled again at once; then the interval, +-10%.
    assert waits[0] == 0.0
    assert all(0.18 <= wait <= 0.22 for wait in waits[1:]), waits
