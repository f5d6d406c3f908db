"""What the agent tells the server about its cluster: a stable instance id (kept in the cache
directory, or given), its own version and the Kubernetes version, against the real server."""

from __future__ import annotations

import pytest

from deployd import __version__
from deployd.client.poller import Poller
from deployd.errors import ConfigError
from deployd.fleet.instances import instance_key
from deployd.fleet.paging import FleetQuery
from tests.support.polling import eventually


def instances(live) -> list:
    return live.store.fleet_page(FleetQuery()).instances


def test_the_instance_id_is_made_once_and_kept_across_restarts(live, live_config, tmp_path):
    config = live_config(cache_dir=tmp_path / "cache", kubernetes_version="v1.29.4")
    with Poller(config) as poller:
        poller.poll_once()
    kept = (tmp_path / "cache" / "instance-id").read_text().strip()
    with Poller(config) as poller:  # a restarted agent
        poller.poll_once()
    key = instance_key("acme", kept)
    eventually(lambda: live.store.instance(key) is not None)
    record = live.store.instance(key)
    assert (record.agent_id, record.agent_version, record.kubernetes_version) == (
        kept,
        __version__,
        "v1.29.4",
    )
    assert [r.key for r in instances(live)] == [key]


def test_a_given_instance_id_is_sent(live, live_config, tmp_path):
    with Poller(live_config(instance_id="cluster-7f3a", cache_dir=tmp_path / "c")) as poller:
        poller.poll_once()
    eventually(lambda: live.store.instance(instance_key("acme", "cluster-7f3a")) is not None)
    assert not (tmp_path / "c" / "instance-id").exists()


@pytest.mark.parametrize(
    "overrides", [{"instance_id": "has space"}, {"kubernetes_version": "1.29 (gke)"}]
)
def test_a_malformed_instance_id_or_version_is_a_config_error(live_config, overrides):
    with pytest.raises(ConfigError):
        live_config(**overrides)
