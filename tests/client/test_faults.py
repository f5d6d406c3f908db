"""Faults: a small HTTP server replays bytes captured from the real server, then misbehaves.

Every test checks the same promise: a bad answer is never handed on, the last good spec is kept,
and the client says why.
"""

from __future__ import annotations

import time

import pytest

from deployd.client.config import load_trusted_keys
from deployd.client.poller import Poller, PollOutcome, SyncAction
from tests.client.faultserver import (
    closed_port_url,
    drip,
    error,
    hang_up,
    oversize,
    serve,
    slow,
)
from tests.support.factories import CHANNEL_YAML
from tests.support.live import LiveServer
from tests.support.polling import Recorder, run_until
from tests.support.world import World


@pytest.fixture
def captured(live):
    """The real server's answer for the license's channel (stable, newest release)."""
    answer = live.capture()
    assert answer.status == 200 and answer.signature and answer.etag
    return answer


@pytest.fixture
def fault_config(live_config, fault_server):
    """Trusts the live server's key, but talks to the fault server."""

    def make(**overrides):
        return live_config(server=fault_server.url, **overrides)

    return make


def replay(answer):
    return serve(answer.body, answer.signature, answer.etag)


def first_then(fault_server, fault_config, captured, misbehaviour, **config):
    """Accept the captured spec, then poll once more against `misbehaviour`."""
    fault_server.script(replay(captured), misbehaviour)
    recorder = Recorder()
    with Poller(fault_config(**config)) as poller:
        assert poller.sync_once(recorder).action is SyncAction.APPLIED
        started = time.monotonic()
        result = poller.sync_once(recorder)
        elapsed = time.monotonic() - started
    assert result.poll.spec is not None and result.poll.spec.body == captured.body
    assert result.action is SyncAction.UNCHANGED and len(recorder.calls) == 1
    return result.poll, elapsed


def test_replayed_real_bytes_verify_and_answer_304(fault_server, fault_config, captured):
    fault_server.script(replay(captured))
    with Poller(fault_config()) as poller:
        assert poller.poll_once().spec.release == "1.2.0"
        assert poller.poll_once().outcome is PollOutcome.NOT_MODIFIED


@pytest.mark.parametrize(
    ("misbehaviour", "outcome", "reason"),
    [
        (error(500, "internal", "boom"), PollOutcome.UNAVAILABLE, "internal"),
        (error(502, "bad_gateway", "upstream"), PollOutcome.UNAVAILABLE, "bad_gateway"),
        (hang_up, PollOutcome.UNAVAILABLE, "unreachable"),
        (oversize(500_000_000, declare_length=True), PollOutcome.UNAVAILABLE, "oversize"),
        (oversize(500_000_000, declare_length=False), PollOutcome.UNAVAILABLE, "oversize"),
    ],
)
def test_server_faults_keep_the_last_good_spec(
    fault_server, fault_config, captured, misbehaviour, outcome, reason
):
    poll, elapsed = first_then(fault_server, fault_config, captured, misbehaviour)
    assert (poll.outcome, poll.reason) == (outcome, reason)
    # Reading a 500 MB body to the end would take over a minute (see `oversize`): the client
    # refuses it at its limit instead. The bound is wide so that a busy machine cannot break it.
    assert elapsed < 30


def test_a_slow_server_past_the_read_timeout(fault_server, fault_config, captured):
    poll, elapsed = first_then(
        fault_server, fault_config, captured, slow(90.0, replay(captured)), read_timeout=0.3
    )
    assert (poll.outcome, poll.reason) == (PollOutcome.UNAVAILABLE, "timeout")
    assert elapsed < 30  # without the read timeout it would wait the server's 90 s


def test_a_server_dripping_bytes_past_the_total_timeout(fault_server, fault_config, captured):
    poll, elapsed = first_then(
        fault_server,
        fault_config,
        captured,
        drip(captured.body, interval=0.05),
        read_timeout=1.0,
        total_timeout=0.4,
    )
    assert (poll.outcome, poll.reason) == (PollOutcome.UNAVAILABLE, "timeout")
    # Every byte arrives within the read timeout; the whole body would take minutes to drip.
    assert elapsed < 30


def test_a_body_changed_by_one_byte(fault_server, fault_config, captured):
    index = captured.body.index(b"0.52.0")
    tampered = captured.body[:index] + b"9" + captured.body[index + 1 :]
    poll, _ = first_then(
        fault_server, fault_config, captured, serve(tampered, captured.signature, '"other"')
    )
    assert (poll.outcome, poll.reason) == (PollOutcome.REFUSED, "bad_signature")


def test_a_spec_signed_by_an_unknown_key(fault_server, fault_config, captured, other_signer):
    forged = serve(captured.body, other_signer.sign(captured.body), '"forged"')
    poll, _ = first_then(fault_server, fault_config, captured, forged)
    assert (poll.outcome, poll.reason) == (PollOutcome.REFUSED, "unknown_key")
    assert "other-spec" in poll.message


def test_a_valid_but_older_signed_spec_replayed_is_a_rollback(
    live, fault_server, fault_config, captured
):
    live.publish_next_release()
    newer = live.capture()
    assert b'"sequence":"2"' in newer.body
    fault_server.script(replay(newer), replay(captured))
    with Poller(fault_config()) as poller:
        assert poller.poll_once().spec.sequence == 2
        result = poller.poll_once()
    assert (result.outcome, result.reason) == (PollOutcome.REFUSED, "rollback")
    assert result.spec.release == "1.3.0"


def test_a_spec_for_another_channel_is_mix_and_match(live, fault_server, fault_config, captured):
    beta = live.capture("/api/v1/operator/channel?channel=beta")
    poll, _ = first_then(fault_server, fault_config, captured, replay(beta))
    assert (poll.outcome, poll.reason) == (PollOutcome.REFUSED, "wrong_channel")


def test_a_spec_for_another_release_than_pinned(live, fault_server, fault_config):
    pinned = live.capture("/api/v1/operator/channel/release/1.0.0")
    other = live.capture("/api/v1/operator/channel/release/1.1.0")
    fault_server.script(replay(pinned), replay(other))
    with Poller(fault_config(release="1.0.0")) as poller:
        assert poller.poll_once().spec.release == "1.0.0"
        result = poller.poll_once()
    assert (result.outcome, result.reason) == (PollOutcome.REFUSED, "wrong_release")


def test_an_expired_spec_from_a_server_with_a_tiny_window_is_a_freeze(
    tmp_path, fault_server, make_config
):
    short = LiveServer(
        World(
            tmp_path / "short",
            rate_limit_enabled=False,
            spec_window_seconds=1,
            spec_expiry_windows=1,
        )
    )
    try:
        answer = short.capture()
    finally:
        short.stop()
    assert answer.status == 200
    config = make_config(
        server=fault_server.url,
        license=short.license,
        trusted_keys=load_trusted_keys([short.signing_key]),
    )
    fault_server.script(replay(answer))
    time.sleep(1.05)  # the window (and with it the spec) has ended
    recorder = Recorder()
    with Poller(config) as poller:
        result = poller.sync_once(recorder)
    assert (result.poll.outcome, result.poll.reason) == (PollOutcome.REFUSED, "expired")
    assert result.action is SyncAction.NO_SPEC and not recorder.calls


def test_server_down_from_the_start_without_a_cache(live_config):
    recorder = Recorder()
    with Poller(live_config(server=closed_port_url())) as poller:
        result = poller.sync_once(recorder)
    assert result.action is SyncAction.NO_SPEC and not recorder.calls
    assert result.message.startswith("cannot reach the server")


def test_server_down_from_the_start_with_a_cache(live, live_config, caplog):
    with Poller(live_config()) as warm:
        assert warm.sync_once(Recorder()).action is SyncAction.APPLIED
    live.stop()
    recorder = Recorder()
    with Poller(live_config()) as restarted:
        # The warm cache is reconciled exactly once, however many polls fail.
        run_until(restarted, recorder, lambda: caplog.text.count("cannot reach the server") >= 4)
    assert len(recorder.calls) == 1 and recorder.calls[0][0].release == "1.2.0"
    assert "keeping the last good spec (channel stable, release 1.2.0" in caplog.text


def test_retry_after_from_an_overloaded_server_is_reported(fault_server, fault_config, captured):
    poll, _ = first_then(
        fault_server, fault_config, captured, error(429, "rate_limited", "slow down", "42")
    )
    assert (poll.outcome, poll.retry_after) == (PollOutcome.UNAVAILABLE, 42.0)


def test_a_required_release_captured_from_a_client_behind_is_a_downgrade(
    live, fault_server, fault_config
):
    live.publish_next_release()
    newest = live.capture()
    # What the server gives a client still on 1.0.0 at the same sequence: the required 1.1.0.
    behind = live.capture(Deployd_Current_Version="1.0.0")
    assert b'"release":"1.3.0"' in newest.body and b'"sequence":"2"' in newest.body
    assert b'"release":"1.1.0"' in behind.body and b'"sequence":"2"' in behind.body
    fault_server.script(replay(newest), replay(behind))
    recorder = Recorder()
    with Poller(fault_config()) as poller:
        assert poller.sync_once(recorder).action is SyncAction.APPLIED
        replayed = poller.sync_once(recorder)
    with Poller(fault_config()) as restarted:
        after_restart = restarted.sync_once(recorder)
    for result in (replayed, after_restart):
        assert (result.poll.outcome, result.poll.reason) == (PollOutcome.REFUSED, "downgrade")
        assert result.poll.spec.release == "1.3.0"
    assert [desired.release for desired, _ in recorder.calls] == ["1.3.0"]


def test_a_publishers_rollback_is_a_new_sequence_and_goes_through(live, fault_server, fault_config):
    live.publish_next_release()
    newest = live.capture()
    live.publish("stable", CHANNEL_YAML.format(name="stable"))  # 1.3.0 withdrawn again
    rolled_back = live.capture()
    assert b'"release":"1.2.0"' in rolled_back.body and b'"sequence":"3"' in rolled_back.body
    fault_server.script(replay(newest), replay(rolled_back))
    recorder = Recorder()
    with Poller(fault_config()) as poller:
        assert poller.sync_once(recorder).action is SyncAction.APPLIED
        assert poller.sync_once(recorder).action is SyncAction.APPLIED
    assert [desired.release for desired, _ in recorder.calls] == ["1.3.0", "1.2.0"]
