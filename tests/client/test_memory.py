"""What the client remembers across polls and restarts, offline mode, and what it refuses to use."""

from __future__ import annotations

import json
import logging
import time

import pytest

from deployd.client.poller import Poller, PollOutcome, SyncAction
from tests.client.faultserver import closed_port_url, serve
from tests.client.specs import DAY
from tests.support.polling import LICENSE, Recorder, run_until


def make_poller(make_config, server, **kwargs):
    clock = kwargs.pop("clock", time.time)
    return Poller(make_config(server=server, license=LICENSE, **kwargs), clock=clock)


def test_restart_with_a_warm_cache_and_the_server_down_reconciles_once(
    fault_server, make_config, signer, caplog
):
    bundle = signer.bundle(etag='"e"', release="1.2.0", sequence=4)
    fault_server.script(serve(bundle.body, bundle.signature, bundle.etag))
    with make_poller(make_config, fault_server.url) as first:
        assert first.sync_once(Recorder()).action is SyncAction.APPLIED

    recorder = Recorder()
    down = closed_port_url()
    with make_poller(make_config, down) as restarted:
        assert restarted.held_spec.body == bundle.body
        # Several polls against the dead server: the cached spec is reconciled once, on start.
        run_until(restarted, recorder, lambda: caplog.text.count("cannot reach the server") >= 4)
    assert len(recorder.calls) == 1
    desired, previous = recorder.calls[0]
    assert desired.release == "1.2.0" and previous.release == "1.2.0"


def test_no_cache_and_no_server_is_a_clear_failure(make_config):
    recorder = Recorder()
    with make_poller(make_config, closed_port_url()) as poller:
        result = poller.sync_once(recorder)
    assert result.action is SyncAction.NO_SPEC and not recorder.calls
    assert "cannot reach the server" in result.message
    assert result.poll.outcome is PollOutcome.UNAVAILABLE


def test_the_cached_etag_is_sent_after_a_restart(fault_server, make_config, signer):
    bundle = signer.bundle(etag='"cached"')
    fault_server.script(serve(bundle.body, bundle.signature, bundle.etag))
    with make_poller(make_config, fault_server.url) as first:
        first.sync_once(Recorder())
    with make_poller(make_config, fault_server.url) as restarted:
        result = restarted.poll_once()
    assert result.outcome is PollOutcome.NOT_MODIFIED
    assert fault_server.requests[-1].headers["If-None-Match"] == '"cached"'
    assert fault_server.requests[-1].headers["Deployd-Current-Version"] == "1.0.0"


def _seed_cache(make_config, fault_server, signer, **fields):
    bundle = signer.bundle(etag='"e"', **fields)
    fault_server.script(serve(bundle.body, bundle.signature, bundle.etag))
    with make_poller(make_config, fault_server.url) as first:
        first.sync_once(Recorder())
    return bundle


def test_a_tampered_cached_spec_is_not_used(fault_server, make_config, signer, tmp_path, caplog):
    _seed_cache(make_config, fault_server, signer)
    spec_file = tmp_path / "cache" / "spec.json"
    document = json.loads(spec_file.read_text())
    document["body"] = document["body"].replace('"1.0.0"', '"6.6.6"')
    spec_file.write_text(json.dumps(document))
    with make_poller(make_config, closed_port_url()) as restarted:
        assert restarted.held_spec is None
        result = restarted.sync_once(Recorder())
    assert result.action is SyncAction.NO_SPEC
    assert "not using the cached spec (bad_signature)" in caplog.text


def test_an_expired_cached_spec_is_never_handed_on_but_nothing_is_torn_down(
    fault_server, make_config, signer, tmp_path
):
    _seed_cache(make_config, fault_server, signer, expires=time.time() + DAY)
    applied_before = (tmp_path / "cache" / "applied.json").read_bytes()
    recorder = Recorder()
    later = time.time() + 2 * DAY
    with make_poller(make_config, closed_port_url(), clock=lambda: later) as restarted:
        assert restarted.held_spec is None
        result = restarted.sync_once(recorder)
    assert result.action is SyncAction.NO_SPEC and not recorder.calls
    assert "release 1.0.0 stays deployed as it is" in result.message
    assert "the cached spec is not usable (expired)" in result.message
    assert (tmp_path / "cache" / "applied.json").read_bytes() == applied_before


def test_a_held_spec_that_expires_while_the_server_is_down_stops_being_used(
    fault_server, make_config, signer
):
    bundle = signer.bundle(etag='"e"', expires=time.time() + 60)
    fault_server.script(serve(bundle.body, bundle.signature, bundle.etag))
    now = [time.time()]
    recorder = Recorder(failures=1)
    with make_poller(make_config, fault_server.url, clock=lambda: now[0]) as poller:
        assert poller.sync_once(recorder).action is SyncAction.FAILED
        fault_server.stop()
        assert poller.sync_once(recorder).action is SyncAction.APPLIED  # retried from memory
        now[0] += 120
        result = poller.sync_once(recorder)
    assert result.action is SyncAction.NO_SPEC and len(recorder.calls) == 2
    assert "the last good spec expired at" in result.message


def test_rollback_floors_survive_a_restart(fault_server, make_config, signer):
    _seed_cache(make_config, fault_server, signer, sequence=5)
    older = signer.bundle(etag='"old"', sequence=4)
    fault_server.script(serve(older.body, older.signature, older.etag))
    with make_poller(make_config, fault_server.url) as restarted:
        result = restarted.poll_once()
    assert (result.outcome, result.reason) == (PollOutcome.REFUSED, "rollback")
    assert result.spec.sequence == 5


@pytest.mark.parametrize("damage", ["garbage", None])
def test_damaged_or_lost_floors_are_rebuilt_from_the_cached_spec(
    fault_server, make_config, signer, tmp_path, damage
):
    _seed_cache(make_config, fault_server, signer, sequence=5)
    floors = tmp_path / "cache" / "sequences.json"
    if damage is None:
        floors.unlink()
    else:
        floors.write_text(damage)
    older = signer.bundle(etag='"old"', sequence=4)
    fault_server.script(serve(older.body, older.signature, older.etag))
    with make_poller(make_config, fault_server.url) as restarted:
        assert restarted.poll_once().reason == "rollback"
    assert json.loads(floors.read_text()) == {"stable": {"sequence": 5, "release": "1.0.0"}}


def test_a_damaged_applied_state_means_the_next_good_spec_is_applied_again(
    fault_server, make_config, signer, tmp_path, caplog
):
    bundle = _seed_cache(make_config, fault_server, signer)
    (tmp_path / "cache" / "applied.json").write_text("{")
    recorder = Recorder()
    fault_server.script(serve(bundle.body, bundle.signature, bundle.etag))
    with make_poller(make_config, fault_server.url) as restarted:
        assert restarted.current_version is None
        assert restarted.sync_once(recorder).action is SyncAction.APPLIED
    assert "applied.json: damaged" in caplog.text


# --- offline (air-gapped) mode ------------------------------------------------------------------


def offline_poller(make_config, path, **kwargs):
    # No license here: an offline site without one names its channel.
    return Poller(make_config(offline_spec=path, channel="stable", **kwargs))


def test_offline_bundles_are_verified_and_followed(make_config, signer, tmp_path):
    path = tmp_path / "bundle.json"
    path.write_bytes(signer.bundle(release="1.0.0", sequence=1).to_bytes())
    recorder = Recorder()
    with offline_poller(make_config, path) as poller:
        assert poller.sync_once(recorder).action is SyncAction.APPLIED
        assert poller.sync_once(recorder).poll.outcome is PollOutcome.NOT_MODIFIED
        path.write_bytes(signer.bundle(release="1.1.0", sequence=2).to_bytes())
        assert poller.sync_once(recorder).action is SyncAction.APPLIED
    assert [d.release for d, _ in recorder.calls] == ["1.0.0", "1.1.0"]


@pytest.mark.parametrize(
    ("content", "outcome", "reason"),
    [
        (None, PollOutcome.UNAVAILABLE, "offline_unreadable"),
        (b"{}", PollOutcome.REFUSED, "malformed_bundle"),
        ("tampered", PollOutcome.REFUSED, "bad_signature"),
        ("older", PollOutcome.REFUSED, "rollback"),
    ],
)
def test_a_bad_offline_bundle_keeps_the_last_good_spec(
    make_config, signer, tmp_path, content, outcome, reason
):
    path = tmp_path / "bundle.json"
    good = signer.bundle(sequence=3)
    path.write_bytes(good.to_bytes())
    with offline_poller(make_config, path) as poller:
        poller.poll_once()
        if content is None:
            path.unlink()
        elif content == "tampered":
            path.write_bytes(good.to_bytes().replace(b"1.0.0", b"1.0.1"))
        elif content == "older":
            path.write_bytes(signer.bundle(sequence=2).to_bytes())
        else:
            path.write_bytes(content)
        result = poller.poll_once()
    assert (result.outcome, result.reason) == (outcome, reason)
    assert result.spec.body == good.body


def test_the_cache_file_is_itself_an_offline_bundle(fault_server, make_config, signer, tmp_path):
    _seed_cache(make_config, fault_server, signer, release="1.4.0")
    copy = tmp_path / "carried-over.json"
    copy.write_bytes((tmp_path / "cache" / "spec.json").read_bytes())
    other_cache = tmp_path / "site-b"
    with offline_poller(make_config, copy, cache_dir=other_cache) as poller:
        assert poller.poll_once().spec.release == "1.4.0"


def test_an_older_offline_bundle_is_taken_when_its_release_is_pinned(
    make_config, signer, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    path = tmp_path / "bundle.json"
    path.write_bytes(signer.bundle(release="1.2.0", sequence=9).to_bytes())
    with offline_poller(make_config, path) as poller:
        poller.poll_once()
    path.write_bytes(signer.bundle(release="1.0.0", sequence=3).to_bytes())
    with offline_poller(make_config, path, release="1.0.0") as pinned:
        assert pinned.poll_once().spec.release == "1.0.0"
    with offline_poller(make_config, path) as unpinned:
        assert unpinned.poll_once().reason == "rollback"
