"""A worker's license cache is bounded by memory (DEPLOYD_LICENSE_CACHE_MB): past the budget the
oldest licenses are forgotten and verified again when they poll, with the same answers."""

from __future__ import annotations

from deployd.protocol import SPEC_PATH
from tests.support.http import basic
from tests.support.world import World

MB = 1024 * 1024


def test_a_full_license_cache_forgets_the_oldest_and_answers_them_the_same(tmp_path):
    world = World(tmp_path, license_cache_mb=1, rate_limit_enabled=False)
    client = world.client
    # About 1.1 KB each by the cache's estimate: more than 1 MB of them.
    licenses = [world.license(customer=f"customer-{i:04d}") for i in range(1100)]
    first = [client.get(SPEC_PATH, headers=basic(token)) for token in licenses]
    assert {answer.status_code for answer in first} == {200}

    cache = world.app.extensions["deployd"].verifier
    assert 0 < len(cache) < len(licenses)
    assert cache.bytes <= 1 * MB
    misses = cache.misses
    again = client.get(SPEC_PATH, headers=basic(licenses[0]))  # forgotten: verified again
    assert cache.misses == misses + 1
    assert again.status_code == 200
    # The same choice (issuedAt would move if a spec window ended in between).
    chosen = ("channel", "release", "sequence")
    now, before = again.get_json()["metadata"], first[0].get_json()["metadata"]
    assert [now[k] for k in chosen] == [before[k] for k in chosen]
