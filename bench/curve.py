"""The cost curve of issue 15, part 4: poll throughput and memory of one worker as the fleet grows.

One dimension moves at a time from a base of 1,000 licenses, 3 channels, 10 releases per channel
and no revocations: licenses (1k, 10k, 100k, 1M), channels (3, 1k, 10k), releases per channel
(10, 1,000) and revocations (0, 100k, 1M). Each row runs in a fresh process (so its RSS is its
own): it builds the world in memory, polls every license once (the warm-up: each license is
verified, each channel compiled and each spec rendered once), then measures warm polls through the
WSGI app called directly (no server, no sockets) and reports polls per second of that one process
and its RSS. Signed licenses are kept under the cache directory (`--cache-dir`, default
.bench-cache/), with the key that signed them, so 1M licenses are signed once.

    python -m bench.curve --smoke          # small sizes, to check the tool
    python -m bench.curve                  # the full table (hours at 1M licenses)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.profile_poll import build, environ_for, poll
from bench.world import Keys, make_keys, sign_licenses

MB = 1024 * 1024
BASE = {"licenses": 1_000, "channels": 3, "releases": 10, "revocations": 0}
FULL = {
    "licenses": [1_000, 10_000, 100_000, 1_000_000],
    "channels": [3, 1_000, 10_000],
    "releases": [10, 1_000],
    "revocations": [0, 100_000, 1_000_000],
}
SMOKE = {
    "licenses": [200, 2_000],
    "channels": [3, 200],
    "releases": [10, 100],
    "revocations": [0, 10_000],
}


@dataclass(frozen=True)
class Row:
    licenses: int
    channels: int
    releases: int
    revocations: int
    polls_per_second: float = 0.0
    rss_mb: float = 0.0


def cached_licenses(cache: Path, channels: list[str], count: int) -> tuple[Keys, list[str]]:
    """`count` licenses spread over `channels`, signed once and kept under `cache`."""
    world = cache / f"licenses-{count}-over-{len(channels)}-{channels[0]}"
    tokens = world / "tokens.txt"
    if not tokens.exists():
        world.mkdir(parents=True, exist_ok=True)
        keys = make_keys(world / "keys") if not (world / "keys").exists() else _keys(world)
        tokens.write_text("\n".join(sign_licenses(keys, channels, count)))
    return _keys(world), tokens.read_text().split("\n")


def _keys(world: Path) -> Keys:
    keys = world / "keys"
    return Keys(
        keys / "license-keys", keys / "private" / "bench.key", keys / "signing" / "spec.key"
    )


def measure(row: Row, cache: Path, polls: int) -> Row:
    """Build the row's world in this process, warm it up, and measure warm polls."""
    with tempfile.TemporaryDirectory() as tmp:
        names = [f"scale-{i:05d}" for i in range(row.channels)]
        keys, licenses = cached_licenses(cache, names, row.licenses)
        app, _ = build(Path(tmp), keys, row.channels, row.releases)
        deployd = app.extensions["deployd"]
        for n in range(row.revocations):
            deployd.store.revoke(f"{n:032x}", reason="bench", by="bench")
        deployd.state.refresh(force=True)
        calls = [poll(app, environ_for(token)) for token in licenses]
        for call in calls:
            call()  # warm-up
        started = time.perf_counter()
        for i in range(polls):
            calls[i % len(calls)]()
        elapsed = time.perf_counter() - started
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return Row(**{**asdict(row), "polls_per_second": polls / elapsed, "rss_mb": rss / MB})


def rows(sizes: dict[str, list[int]]) -> list[Row]:
    """The base row, then one row per other value of each dimension."""
    wanted = [Row(**BASE)]
    for dimension, values in sizes.items():
        for value in values:
            row = Row(**{**BASE, dimension: value})
            if row not in wanted:
                wanted.append(row)
    return wanted


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.curve", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="small sizes, to check the tool")
    parser.add_argument("--polls", type=int, default=50_000, help="measured polls per row")
    parser.add_argument("--cache-dir", type=Path, default=Path(".bench-cache"))
    parser.add_argument("--row", help=argparse.SUPPRESS)  # one row, in a child process
    args = parser.parse_args(argv)
    if args.row:
        print(json.dumps(asdict(measure(Row(**json.loads(args.row)), args.cache_dir, args.polls))))
        return 0
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    heads = ("licenses", 9), ("channels", 8), ("releases", 8), ("revoked", 9), ("polls/s", 9)
    print(" ".join(f"{head:>{width}}" for head, width in heads), f"{'RSS MB':>7}")
    for row in rows(SMOKE if args.smoke else FULL):
        child = [sys.executable, "-m", "bench.curve", "--row", json.dumps(asdict(row))]
        child += ["--polls", str(args.polls), "--cache-dir", str(args.cache_dir)]
        done = subprocess.run(child, check=True, capture_output=True, text=True)
        got = Row(**json.loads(done.stdout.strip().splitlines()[-1]))
        print(
            f"{got.licenses:>9} {got.channels:>8} {got.releases:>8} {got.revocations:>9}"
            f" {got.polls_per_second:>9.0f} {got.rss_mb:>7.0f}",
            flush=True,
        )
    print(f"machine: load average {os.getloadavg()[0]:.2f} at the end (other work skews figures)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
