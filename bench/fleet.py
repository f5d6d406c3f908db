"""The fleet at scale: `python bench/fleet.py` loads 100,000 instances across 10,000 licenses into
a real redis-server (on loopback, in a temporary directory) and times what the read APIs do: the
fleet listing with a few filters and a channel's adoption. It also loads one worker's view of the
whole fleet and reports its memory. Prints milliseconds; exits 1 when the median of a query is
over its target (fleet 200 ms, adoption 100 ms)."""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.servers import RedisServer, free_port  # noqa: E402
from deployd.fleet import queries  # noqa: E402
from deployd.fleet.model import CheckIn  # noqa: E402
from deployd.fleet.paging import Cursor  # noqa: E402
from deployd.fleet.service import FEED_CAP, Fleet  # noqa: E402
from deployd.store.redis import RedisStore  # noqa: E402

CHANNELS = {"stable": 6, "beta": 8, "edge": 10}  # channel -> releases 1.0.0 .. 1.<n-1>.0
BATCH = 1_000
RUNS = 15
FLEET_TARGET_MS = 200.0
ADOPTION_TARGET_MS = 100.0
WEEK_HOURS = 7 * 24


def releases(channel: str) -> list[str]:
    return [f"1.{n}.0" for n in range(CHANNELS[channel])]


def load(store: RedisStore, instances: int, licenses: int, now: float) -> None:
    rng = random.Random(11)
    names = list(CHANNELS)
    batch: list[CheckIn] = []
    for n in range(instances):
        customer = f"customer-{n % licenses:05d}"
        channel = names[n % licenses % len(names)]
        versions = releases(channel)
        # Most run the newest or the one before; a tail lags further behind.
        served = versions[-1 - min(len(versions) - 1, int(rng.expovariate(1.2)))]
        seen = now - rng.uniform(0, 7 * 86400)
        batch.append(
            CheckIn(
                f"i{n:07d}", customer, f"cluster-{n}", channel, served, seen, "0.1.0", "v1.30.1"
            )
        )
        if len(batch) == BATCH:
            store.record_checkins(batch, feed_cap=FEED_CAP)
            batch = []
    if batch:
        store.record_checkins(batch, feed_cap=FEED_CAP)
    hour = int(now // 3600)
    for back in range(WEEK_HOURS, 0, -1):
        store.snapshot_adoption(hour - back, keep_hours=WEEK_HOURS + 24)


def timed(run: Callable[[], object]) -> tuple[float, float]:
    """Median and worst milliseconds over RUNS runs (after one unmeasured)."""
    run()
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


def view_memory(store: RedisStore) -> tuple[int, int, float]:
    """(instances, bytes tracemalloc saw the view take, seconds to load it) for one worker."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    fleet = Fleet(store, ttl_seconds=8 * 86400)
    started = time.perf_counter()
    while fleet.view.position is None:
        fleet.sync()
    seconds = time.perf_counter() - started
    gc.collect()
    taken = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return len(fleet.view), taken, seconds


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--licenses", type=int, default=10_000)
    args = parser.parse_args(argv)
    now = time.time()
    with tempfile.TemporaryDirectory(prefix="deployd-fleet-bench-") as tmp:
        redis = RedisServer(free_port(), tmp)
        redis.start()
        try:
            store = RedisStore.from_url(redis.url, timeout=30)
            store.initialize()
            started = time.perf_counter()
            load(store, args.instances, args.licenses, now)
            print(
                f"loaded {args.instances} instances across {args.licenses} licenses in"
                f" {time.perf_counter() - started:.1f} s"
            )
            return measure(store, now)
        finally:
            redis.stop()


def measure(store: RedisStore, now: float) -> int:
    def releases_of(name: str) -> list[str] | None:
        return releases(name) if name in CHANNELS else None

    day_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 86400))
    first = queries.fleet_page(store, queries.fleet_query({"limit": "100"}, releases_of))
    cursor = first["cursor"]
    assert cursor is not None
    Cursor.decode(cursor)
    listings = {
        "fleet: newest 100": {},
        "fleet: next page": {"cursor": cursor},
        "fleet: channel=beta": {"channel": "beta"},
        "fleet: customer": {"customer": "customer-04242"},
        "fleet: channel+release": {"channel": "edge", "release": "1.7.0"},
        "fleet: behind=2": {"behind": "2"},
        "fleet: seen in the last day": {"seenSince": day_ago},
    }
    failed = False
    for name, filters in listings.items():
        query = queries.fleet_query({"limit": "100", **filters}, releases_of)
        shown = len(queries.fleet_page(store, query)["instances"])
        median, worst = timed(partial(queries.fleet_page, store, query))
        failed |= median > FLEET_TARGET_MS
        print(f"{name:<30} {median:7.1f} ms median {worst:7.1f} ms worst  ({shown} shown)")
    for channel in CHANNELS:
        points = len(queries.adoption(store, channel)["points"])
        median, worst = timed(partial(queries.adoption, store, channel))
        failed |= median > ADOPTION_TARGET_MS
        name = f"adoption: {channel}"
        print(f"{name:<30} {median:7.1f} ms median {worst:7.1f} ms worst  ({points} hourly points)")
    instances, taken, seconds = view_memory(store)
    print(
        f"worker view: {instances} instances in {taken / 2**20:.1f} MiB"
        f" ({taken / max(1, instances):.0f} bytes each), loaded in {seconds:.1f} s"
    )
    verdict = "MISSED" if failed else "met"
    print(
        f"fleet bench: targets {verdict} (median fleet < {FLEET_TARGET_MS:.0f} ms,"
        f" adoption < {ADOPTION_TARGET_MS:.0f} ms)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
