"""Offline bundles made by a server (Flask test client) and followed by an agent that never
touches the network: its fetcher fails the test if called, and it has no server URL.

Every refusal names its reason, applies nothing and leaves the agent's cache as it was.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from deployd.client import CallableReconciler, ClientConfig, Poller, PollOutcome, SyncAction
from deployd.client.config import load_trusted_keys
from deployd.offline.archive import write_archive
from tests.support.factories import CHANNEL_YAML
from tests.support.http import basic
from tests.support.offline import NoNetwork, Vendor, members
from tests.support.publisher_auth import bearer

RELEASE_1_3 = """\
  - version: 1.3.0
    chart: {version: 0.13.0}
    values: {app: {image: {tag: "0.53.0"}}}
"""


class Site:
    """The air-gapped site: an agent following a bundle file, with its cache and reconciler."""

    def __init__(self, root: Path, license: str, trust_key: Path) -> None:
        root.mkdir(parents=True)
        self.bundle = root / "bundle.tar"
        self.cache = root / "cache"
        self.license = license
        self.trusted = load_trusted_keys([trust_key])
        self.applied: list[str] = []

    def sync(self, data: bytes, *, ahead: float = 0.0, **config: object):
        """Write `data` as the bundle and sync once, the agent's clock `ahead` seconds ahead."""
        self.bundle.write_bytes(data)
        fields: dict[str, object] = {
            "trusted_keys": self.trusted,
            "cache_dir": self.cache,
            "license": self.license,
            "offline_bundle": self.bundle,
            **config,
        }
        reconciler = CallableReconciler(lambda desired, _: self.applied.append(desired.release))
        clock = lambda: time.time() + ahead  # noqa: E731
        with Poller(ClientConfig(**fields), fetcher=NoNetwork(), clock=clock) as poller:
            return poller.sync_once(reconciler)

    def snapshot(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in sorted(self.cache.iterdir()) if p.is_file()}


@pytest.fixture
def site(tmp_path, vendor):
    return Site(tmp_path / "site", vendor.world.license(), vendor.key)


def test_an_agent_steps_through_a_bundle_as_the_server_would_without_the_network(vendor, site):
    first = vendor.export(site.license, releases=["1.0.0"])
    assert site.sync(first).action is SyncAction.APPLIED
    bundle = vendor.export(site.license)
    for running in ("1.0.0", "1.1.0"):
        result = site.sync(bundle)
        assert result.poll.outcome is PollOutcome.UPDATED
        assert site.applied[-1] == vendor.served(site.license, current=running)
    assert site.applied == ["1.0.0", "1.1.0", "1.2.0"]
    assert site.sync(bundle).action is SyncAction.UNCHANGED


def test_a_first_install_gets_the_newest_release_the_license_is_served(vendor, site):
    site.sync(vendor.export(site.license))
    assert site.applied == [vendor.served(site.license)] == ["1.2.0"]


def test_the_bundled_spec_is_the_served_one_but_for_its_times(vendor, site):
    data = members(vendor.export(site.license))
    bundled = json.loads(json.loads(data["specs/1.1.0.json"])["body"])
    answer = vendor.client.get(
        "/api/v1/operator/channel",
        headers={**basic(site.license), "Deployd-Current-Version": "1.0.0"},
    )
    served = answer.get_json()
    manifest = json.loads(data["manifest.json"])
    assert bundled["metadata"]["expires"] == manifest["expires"]
    for document in (bundled, served):
        del document["metadata"]["issuedAt"], document["metadata"]["expires"]
    assert bundled == served


def test_a_customer_record_pin_is_what_the_bundle_holds(vendor, site):
    answer = vendor.client.put(
        "/api/v1/customers/acme", json={"pinnedRelease": "1.0.0"}, headers=bearer(vendor.token)
    )
    assert answer.status_code == 200
    manifest = json.loads(members(vendor.export(site.license))["manifest.json"])
    assert [spec["release"] for spec in manifest["specs"]] == ["1.0.0"]


def test_releases_since_leaves_out_what_the_site_needs_no_more(vendor, site):
    manifest = json.loads(
        members(vendor.export(site.license, releasesSince="1.1.0"))["manifest.json"]
    )
    assert [spec["release"] for spec in manifest["specs"]] == ["1.2.0"]


def test_a_bundle_never_outlives_its_license(vendor, site):
    from datetime import timedelta

    short = vendor.world.license(expires_in=timedelta(days=2))
    manifest = json.loads(members(vendor.export(short, expiresIn="90d"))["manifest.json"])
    lasts = time.mktime(time.strptime(manifest["expires"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert lasts <= time.time() + 2 * 86_400 + 60


# --- refusals ----------------------------------------------------------------------------------


def retar(data: bytes, **changes: bytes) -> bytes:
    """The bundle in `data` with some members' bytes replaced (the manifest left as it was)."""
    return write_archive({**members(data), **changes})


def flip_spec_byte(data: bytes) -> bytes:
    spec = json.loads(members(data)["specs/1.3.0.json"])
    spec["body"] = spec["body"].replace("0.53.0", "0.53.1")
    return retar(data, **{"specs/1.3.0.json": json.dumps(spec).encode()})


def later_expiry(data: bytes) -> bytes:
    manifest = json.loads(members(data)["manifest.json"])
    manifest["expires"] = "2099-01-01T00:00:00Z"
    return retar(data, **{"manifest.json": json.dumps(manifest).encode()})


@pytest.fixture
def applied_site(vendor, site):
    """The site on 1.3.0 (sequence 2) from a bundle; `old` is a bundle of sequence 1."""
    vendor.old = vendor.export(site.license)
    vendor.publish(CHANNEL_YAML.format(name="stable") + RELEASE_1_3)
    vendor.current = vendor.export(site.license)
    assert site.sync(vendor.current).action is SyncAction.APPLIED
    assert site.applied == ["1.3.0"]
    return site


REFUSALS = {
    "tampered spec": (lambda v, s, tmp: flip_spec_byte(v.current), "tampered", "changed"),
    "tampered manifest": (
        lambda v, s, tmp: later_expiry(v.current),
        "bad_manifest",
        "signature does not verify",
    ),
    "truncated": (
        lambda v, s, tmp: v.current[: len(v.current) // 2],
        "not_a_bundle",
        "truncated",
    ),
    "expired": (
        lambda v, s, tmp: v.export(s.license, expiresIn="1s"),
        "bundle_expired",
        "expired at",
    ),
    "for another license": (
        lambda v, s, tmp: v.export(v.world.license(customer="globex")),
        "wrong_license",
        "for customer 'globex', not for this license's 'acme'",
    ),
    "older than applied": (lambda v, s, tmp: v.old, "rollback", "older than sequence 2"),
    "a lower release at the same sequence": (
        lambda v, s, tmp: v.export(s.license, releases=["1.2.0"]),
        "downgrade",
        "below release '1.3.0'",
    ),
    "from another server": (
        # Another server that trusts the same license keys but signs with a key of its own.
        lambda v, s, tmp: Vendor(tmp / "other", keys_dir=v.world.settings.keys_dir).export(
            s.license
        ),
        "bad_manifest",
        "signature does not verify",  # its key id is the same (dev-signing), its key is not
    ),
    "of another channel": (
        lambda v, s, tmp: v.export(s.license, channel="beta"),
        "bad_spec",
        "not the expected 'stable'",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_bad_bundle_is_refused_with_one_message_and_nothing_applied(
    vendor, applied_site, tmp_path, case
):
    make, reason, words = REFUSALS[case]
    site = applied_site
    bad = make(vendor, site, tmp_path)
    before = site.snapshot()
    result = site.sync(bad, ahead=5.0 if case == "expired" else 0.0)
    assert result.poll.outcome is PollOutcome.REFUSED
    assert result.poll.reason == reason
    assert words in result.poll.message and "refused the offline bundle" in result.poll.message
    assert site.license not in result.poll.message
    assert site.applied == ["1.3.0"]
    assert site.snapshot() == before


def test_an_agent_without_a_license_takes_no_bundle(site, tmp_path):
    from deployd.errors import ConfigError

    with pytest.raises(ConfigError, match="bound to one license"):
        ClientConfig(
            trusted_keys=site.trusted,
            cache_dir=site.cache,
            channel="stable",
            offline_bundle=site.bundle,
        )


def test_a_pinned_release_missing_from_the_bundle_is_refused(vendor, site):
    result = site.sync(vendor.export(site.license), release="1.0.0")
    assert (result.poll.outcome, result.poll.reason) == (PollOutcome.REFUSED, "no_spec")
    assert "no spec of the pinned release '1.0.0'" in result.poll.message
    assert site.applied == []


def test_a_manifest_and_a_spec_cannot_pass_for_each_other(vendor, site):
    data = members(vendor.export(site.license))
    spec = json.loads(data["specs/1.2.0.json"])
    # A spec with its valid signature in the manifest's place.
    swapped = {
        **data,
        "manifest.json": spec["body"].encode(),
        "manifest.sig": spec["signature"].encode(),
    }
    result = site.sync(write_archive(swapped))
    assert (result.poll.outcome, result.poll.reason) == (PollOutcome.REFUSED, "bad_manifest")
    assert "its kind is not 'deployd-offline-bundle'" in result.poll.message
    # The manifest with its valid signature offered as a spec.
    offline_spec = site.bundle.with_name("spec.json")
    offline_spec.write_text(
        json.dumps(
            {"body": data["manifest.json"].decode(), "signature": data["manifest.sig"].decode()}
        )
    )
    config = ClientConfig(
        trusted_keys=site.trusted,
        cache_dir=site.cache,
        license=site.license,
        offline_spec=offline_spec,
    )
    with Poller(config, fetcher=NoNetwork()) as poller:
        poll = poller.poll_once()
    assert (poll.outcome, poll.reason) == (PollOutcome.REFUSED, "missing_field")
    assert site.applied == []
