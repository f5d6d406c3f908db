"""End to end across an air gap: offline bundles exported from a real gunicorn + redis-server,
over HTTP (`POST /api/v1/bundles`) and with `deployd bundle export --redis-url` (a separate
process, against the store, with a local-path chart included), then imported and applied by an
agent after the server is gone: no server URL, and a fetcher that fails the test if called."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
import requests

from deployd.cli.main import main
from deployd.client import CallableReconciler, ClientConfig, Poller, PollOutcome
from deployd.client.config import load_trusted_keys
from deployd.publishers import Scopes
from tests.support.gunicorn import REPO, GunicornServer, redis_setup
from tests.support.offline import NoNetwork, members
from tests.support.publisher_auth import add_publisher, bearer

pytestmark = pytest.mark.e2e

EDGE = """\
name: edge
description: Builds from the charts checked out next to the operator.
chart: {path: charts/app}
values: {app: {image: {tag: "0.1.0"}}}
releases:
  - version: 2.0.0
    values: {app: {image: {tag: "2.0.0"}}}
"""


@pytest.fixture
def served(tmp_path, real_redis, redis_server):
    setup = redis_setup(tmp_path, redis_server.url)
    server = GunicornServer({**setup.env, "DEPLOYD_RATE_LIMIT": "0"}, workers=2)
    server.start(tmp_path)
    try:
        yield server, setup
    finally:
        server.stop()


def test_bundles_exported_from_a_real_server_are_applied_across_the_gap(served, tmp_path, capsys):
    server, setup = served
    admin = add_publisher(setup.store, "release-eng")
    published = requests.put(
        server.url + "/api/v1/channels/edge",
        data=EDGE,
        headers={**bearer(admin), "Content-Type": "application/yaml"},
        timeout=30,
    )
    assert published.status_code in (200, 201), published.text
    license = setup.kit.issue(channel="stable", channels=["stable", "edge"])
    license_file = tmp_path / "license.jwt"
    license_file.write_text(license + "\n")

    # Over HTTP, with a token that may do nothing but export bundles.
    exporter = add_publisher(setup.store, "air-gap", scopes=Scopes.of(["bundles"], []))
    answer = requests.post(
        server.url + "/api/v1/bundles",
        json={"license": license, "expiresIn": "90d"},
        headers=bearer(exporter),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    over_http = tmp_path / "stable.tar"
    over_http.write_bytes(answer.content)

    # Against the store, in a process of its own, with the local-path chart's archive.
    chart_root = tmp_path / "checkout"
    (chart_root / "charts" / "app").mkdir(parents=True)
    (chart_root / "charts" / "app" / "Chart.yaml").write_text("name: app\nversion: 2.0.0\n")
    from_store = tmp_path / "edge.tar"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEPLOYD_")}
    env.update(setup.env)
    exported = subprocess.run(
        [sys.executable, "-m", "deployd", "bundle", "export", "--license", str(license_file)]
        + ["--channel", "edge", "--include-charts", "--chart-root", str(chart_root)]
        + ["--out", str(from_store)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert exported.returncode == 0, exported.stderr
    assert f"wrote {from_store}" in exported.stdout
    assert license not in exported.stdout + exported.stderr

    server.stop()  # the gap: nothing answers from here on

    trust_key = tmp_path / "signing" / "spec-1.pub"
    stable_site, edge_site = tmp_path / "stable-site", tmp_path / "edge-site"
    for site, bundle, channel in (
        (stable_site, over_http, "stable"),
        (edge_site, from_store, "edge"),
    ):
        code = main(
            ["bundle", "import", str(bundle), "--trust-key", str(trust_key)]
            + ["--license-file", str(license_file), "--channel", channel]
            + ["--cache-dir", str(site)]
        )
        assert code == 0, capsys.readouterr().err
    assert "next release to apply on a first install: 2.0.0" in capsys.readouterr().out

    manifest = json.loads(members(from_store.read_bytes())["manifest.json"])
    chart = (edge_site / "charts" / "2.0.0.tgz").read_bytes()
    assert manifest["charts"][0]["digest"] == "sha256:" + hashlib.sha256(chart).hexdigest()

    for site, channel, release in ((stable_site, "stable", "1.2.0"), (edge_site, "edge", "2.0.0")):
        applied: list[str] = []
        config = ClientConfig(
            trusted_keys=load_trusted_keys([trust_key]),
            cache_dir=site,
            license=license,
            channel=channel,
            offline_bundle=site / "offline-bundle.tar",
        )
        assert config.server is None
        with Poller(config, fetcher=NoNetwork()) as poller:
            result = poller.sync_once(
                CallableReconciler(lambda d, _, seen=applied: seen.append(d.release))
            )
        assert result.poll.outcome is PollOutcome.UPDATED, result.poll.message
        assert applied == [release]
