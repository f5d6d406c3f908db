"""The client against the real server (create_app on loopback via werkzeug): no mocks."""

from __future__ import annotations

import json
import time

from deployd.cli.main import main
from deployd.client.config import load_trusted_keys
from deployd.client.fetch import HttpFetcher
from deployd.client.poller import Poller, PollOutcome, SyncAction
from tests.support.helm import EXAMPLE, helm_env
from tests.support.polling import Recorder, eventually, run_until, running


class RecordingFetcher(HttpFetcher):
    """The real fetcher, remembering the status of every answer."""

    def __init__(self, config) -> None:
        super().__init__(
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
            total_timeout=config.total_timeout,
            max_body_bytes=config.max_body_bytes,
        )
        self.statuses: list[int] = []

    def get(self, url, *, headers, license):
        response = super().get(url, headers=headers, license=license)
        self.statuses.append(response.status)
        return response


def recording_poller(config, **kwargs):
    fetcher = RecordingFetcher(config)
    return Poller(config, fetcher=fetcher, **kwargs), fetcher


def test_first_poll_gets_the_newest_release_and_the_second_a_304(live, live_config):
    poller, fetcher = recording_poller(live_config())
    with poller:
        first = poller.poll_once()
        second = poller.poll_once()
    assert first.outcome is PollOutcome.UPDATED
    assert (first.spec.channel, first.spec.release, first.spec.key_id) == (
        "stable",
        "1.2.0",
        "dev-signing",
    )
    assert first.spec.chart["version"] == "0.12.0"
    assert second.outcome is PollOutcome.NOT_MODIFIED and second.spec is first.spec
    assert fetcher.statuses == [200, 304]


def test_a_publish_is_picked_up_on_the_next_poll(live, live_config):
    recorder = Recorder()
    with Poller(live_config()) as poller:
        assert poller.sync_once(recorder).action is SyncAction.APPLIED
        sequence = live.publish_next_release()
        deadline = time.monotonic() + 3
        while poller.sync_once(recorder).action is not SyncAction.APPLIED:
            assert time.monotonic() < deadline, "publish not seen"
            time.sleep(0.02)
    assert [d.release for d, _ in recorder.calls] == ["1.2.0", "1.3.0"]
    assert recorder.calls[1][0].metadata["sequence"] == str(sequence)
    assert recorder.calls[1][0].values["app"]["image"]["tag"] == "0.53.0"


def test_a_pinned_release_is_fetched_from_its_own_url(live, live_config):
    poller, fetcher = recording_poller(live_config(release="1.0.0"))
    with poller:
        result = poller.sync_once(Recorder())
        again = poller.poll_once()
    assert result.action is SyncAction.APPLIED and result.desired.release == "1.0.0"
    assert again.outcome is PollOutcome.NOT_MODIFIED and fetcher.statuses == [200, 304]


def test_an_unknown_pinned_release_is_denied_with_the_servers_reason(live, live_config):
    with Poller(live_config(release="9.9.9")) as poller:
        result = poller.poll_once()
    assert (result.outcome, result.reason) == (PollOutcome.DENIED, "unknown_release")


def test_a_required_release_is_stepped_through(live, live_config):
    with Poller(live_config(release="1.0.0")) as pinned:
        assert pinned.sync_once(Recorder()).desired.release == "1.0.0"
    recorder = Recorder()
    with Poller(live_config()) as poller:
        run_until(poller, recorder, lambda: poller.current_version == "1.2.0")
    # From 1.0.0 the server serves the required 1.1.0 first, then the newest.
    assert [d.release for d, _ in recorder.calls] == ["1.1.0", "1.2.0"]
    assert [p.release for _, p in recorder.calls] == ["1.0.0", "1.1.0"]


def test_another_allowed_channel_can_be_asked_for(live, live_config):
    with Poller(live_config(channel="beta")) as poller:
        assert poller.poll_once().spec.channel == "beta"


def test_a_channel_the_license_may_not_read_is_denied(live, live_config):
    license = live.issue(channel="stable", channels=("stable",))
    with Poller(live_config(channel="beta", license=license)) as poller:
        result = poller.poll_once()
    assert (result.outcome, result.reason) == (PollOutcome.DENIED, "channel_not_allowed")


def test_a_bad_license_is_denied_and_nothing_is_applied(live, live_config):
    recorder = Recorder()
    with Poller(live_config(license=live.license[:-4] + "AAAA")) as poller:
        result = poller.sync_once(recorder)
    assert result.poll.outcome is PollOutcome.DENIED and result.poll.reason == "bad_signature"
    assert result.action is SyncAction.NO_SPEC and not recorder.calls


def test_the_servers_jwks_can_be_pinned_as_the_trusted_key_set(live, live_config, tmp_path):
    import requests

    jwks = requests.get(live.url + "/.well-known/jwks.json", timeout=5).json()
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    trusted = load_trusted_keys([tmp_path / "jwks.json"])
    assert list(trusted) == ["dev-signing"]
    with Poller(live_config(trusted_keys=trusted)) as poller:
        assert poller.poll_once().outcome is PollOutcome.UPDATED


def test_a_server_signing_with_a_key_the_client_does_not_trust_is_refused(
    live, live_config, signer
):
    with Poller(live_config(trusted_keys=signer.trusted)) as poller:
        result = poller.sync_once(Recorder())
    assert (result.poll.outcome, result.poll.reason) == (PollOutcome.REFUSED, "unknown_key")
    assert result.action is SyncAction.NO_SPEC


def test_the_server_killed_mid_run_and_back(live, live_config, caplog):
    recorder = Recorder()
    poller, fetcher = recording_poller(live_config())
    with poller, running(poller, recorder):
        eventually(lambda: poller.current_version == "1.2.0")
        live.stop()
        eventually(lambda: caplog.text.count("cannot reach the server") >= 3)
        assert poller.held_spec.release == "1.2.0"
        answered = len(fetcher.statuses)
        live.start()
        eventually(lambda: len(fetcher.statuses) > answered)
    assert fetcher.statuses[answered:][:1] == [304]
    assert [d.release for d, _ in recorder.calls] == ["1.2.0"]
    assert "keeping the last good spec (channel stable, release 1.2.0" in caplog.text


def test_a_reconciler_that_fails_twice_then_succeeds(live, live_config):
    recorder = Recorder(failures=2)
    with Poller(live_config()) as poller:
        run_until(poller, recorder, lambda: poller.applied is not None)
        assert poller.current_version == "1.2.0"
    assert len(recorder.calls) == 3


# --- the CLI against the live server ------------------------------------------------------------


def agent_args(live, tmp_path, *extra):
    (tmp_path / "license").write_text(live.license)
    return [
        "agent",
        "--server",
        live.url,
        "--license-file",
        str(tmp_path / "license"),
        "--trust-key",
        str(live.signing_key),
        "--cache-dir",
        str(tmp_path / "agent-cache"),
        "--once",
        *extra,
    ]


def test_agent_once_writes_the_spec_then_reports_unchanged(live, tmp_path, capsys):
    out = tmp_path / "spec.yaml"
    assert main(agent_args(live, tmp_path, "--write", str(out))) == 0
    assert "applied release 1.2.0 (channel stable, sequence 1)" in capsys.readouterr().out
    assert "release: 1.2.0" in out.read_text()
    assert main(agent_args(live, tmp_path, "--write", str(out))) == 0
    assert capsys.readouterr().out.startswith("unchanged: release 1.2.0")


def test_agent_once_runs_the_helm_example(live, tmp_path, monkeypatch, capsys):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "helm").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/helm-args\n')
    (bin_dir / "helm").chmod(0o755)
    for name, value in helm_env(bin_dir, HELM_NAMESPACE="wandb").items():
        monkeypatch.setenv(name, value)
    assert main(agent_args(live, tmp_path, "--exec", str(EXAMPLE))) == 0
    args = (tmp_path / "helm-args").read_text().splitlines()
    assert args[:8] == [
        "upgrade", "--install", "server", "server",
        "--repo", "https://charts.example.com",
        "--version", "0.12.0",
    ]  # fmt: skip


def test_agent_once_without_helm_fails_clearly(live, tmp_path, monkeypatch, capsys):
    for name, value in helm_env(None).items():
        monkeypatch.setenv(name, value)
    assert main(agent_args(live, tmp_path, "--exec", str(EXAMPLE))) == 1
    assert "'helm' is not on PATH" in capsys.readouterr().err
