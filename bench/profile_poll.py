"""Where a poll's time goes, measured in one process: the WSGI app called directly, no server.

Relative costs per call hold on a busy machine where throughput ratios do not. Prints the cost of
a poll answered from the license cache, of a poll whose license is not cached (a full verify, by
the Flask view), where a full verify's time goes, the cost of a poll on a channel not compiled
yet, and the memory the license and channel caches take per entry.

    python -m bench.profile_poll --licenses 20000 --channels 2000
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from werkzeug.test import EnvironBuilder

from bench.world import Keys, basic_auth, channel_document, make_keys, sign_licenses
from deployd.channels import channel_digest, channel_from_document
from deployd.protocol import SPEC_PATH
from deployd.server.app import create_app
from deployd.server.settings import Settings
from deployd.store.memory import MemoryStore


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    if not status.startswith(("200", "304")):
        raise RuntimeError(f"poll answered {status}")


def build(
    root: Path, keys: Keys, channels: int, releases: int, **settings: Any
) -> tuple[Any, list[str]]:
    """The app over a memory store of `channels` channels of `releases` releases, with the
    bench's keys, rate limits and fleet recording off, and `settings` on top."""
    store = MemoryStore()
    names = [f"scale-{i:05d}" for i in range(channels)]
    template = channel_document("template", releases, padding=20)
    for name in names:
        document = {**template, "name": name}
        store.publish(
            name,
            document=document,
            source="(bench)",
            digest=channel_digest(document),
            publisher="bench",
            summary="bench",
        )
    base = Settings(
        keys_dir=str(keys.license_keys_dir),
        signing_key=str(keys.signing_key),
        state_dir=str(root / "state"),
        rate_limit_enabled=False,
        fleet_recording=False,
    )
    app = create_app(replace(base, **settings), store=store)
    app.extensions["deployd"].state.refresh(force=True)
    return app, names


def environ_for(license: str) -> dict[str, Any]:
    builder = EnvironBuilder(path=SPEC_PATH, headers=[("Authorization", basic_auth(license))])
    return builder.get_environ()


def per_call(calls: Iterable[Callable[[], object]]) -> float:
    """Microseconds per call, over the calls given."""
    calls = list(calls)
    started = time.perf_counter()
    for call in calls:
        call()
    return (time.perf_counter() - started) / len(calls) * 1e6


def poll(app: Any, environ: dict[str, Any]) -> Callable[[], object]:
    return lambda: list(app(dict(environ), _start_response))


def top_functions(call: Callable[[], object], limit: int = 12) -> str:
    profile = cProfile.Profile()
    profile.enable()
    call()
    profile.disable()
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(limit)
    return out.getvalue()


def rss_bytes() -> int:
    """This process's resident set size now (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_per_entry(fill: Callable[[], int], forget: Callable[[], object]) -> float:
    """Bytes allocated (and kept) per entry by `fill`, which returns how many it added; prints
    the growth of the RSS too, measured first without tracemalloc (whose own records inflate it),
    then `forget` empties the cache for the traced run."""
    gc.collect()
    rss = rss_bytes()
    added = fill()
    gc.collect()
    print(f"  RSS grew {(rss_bytes() - rss) / 2**20:.0f} MB for {added} entries")
    forget()
    return _traced_per_entry(fill)


def _traced_per_entry(fill: Callable[[], int]) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    added = fill()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / max(added, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--licenses", type=int, default=20_000)
    parser.add_argument("--channels", type=int, default=2_000)
    parser.add_argument("--releases", type=int, default=10)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        keys = make_keys(root / "keys")
        # Caches big enough to hold everything: what an entry costs is measured, not eviction.
        app, names = build(
            root,
            keys,
            args.channels,
            args.releases,
            channel_cache_size=args.channels,
            license_cache_size=10 * args.licenses,
            license_cache_mb=4096,
        )
        deployd = app.extensions["deployd"]
        licenses = sign_licenses(keys, names, args.licenses)
        environs = [environ_for(token) for token in licenses]

        first = per_call(poll(app, e) for e in environs[:2000])
        deployd.verifier.clear()
        miss = per_call(poll(app, e) for e in environs[:2000])
        hit = per_call(poll(app, environs[i % 2000]) for i in range(20_000))
        print(f"poll, nothing cached yet (compile, render, verify): {first:8.1f} us")
        print(f"poll, license cached (fast path):       {hit:8.1f} us")
        print(f"poll, license not cached (Flask + verify): {miss:8.1f} us")

        raw = deployd.verifier.verifier
        fresh = licenses[2000:4000]
        full = per_call(partial(raw.verify, t) for t in fresh)
        print(f"  LicenseVerifier.verify alone:         {full:8.1f} us")
        if args.profile:
            print(top_functions(lambda: [raw.verify(t) for t in fresh]))

        rest = licenses[4000:]
        per_license = memory_per_entry(
            lambda: len([deployd.verifier.verify(t) for t in rest]), deployd.verifier.clear
        )
        estimate = deployd.verifier.bytes / max(len(deployd.verifier), 1)
        print(
            f"license cache: {per_license:.0f} B per entry (estimated {estimate:.0f}),"
            f" {per_license * 1e5 / 2**20:.0f} MB per 100k licenses"
        )

        template = channel_document("template", args.releases, padding=20)
        compile_cost = per_call(
            (lambda: channel_from_document({**template, "name": "probe"})) for _ in range(200)
        )
        print(f"compiling one channel ({args.releases} releases):  {compile_cost:8.1f} us")
        deployd.state._compiled.clear()
        per_channel = memory_per_entry(
            lambda: len([deployd.state.channel(name) for name in names]),
            deployd.state._compiled.clear,
        )
        print(
            f"channel cache: {per_channel / 1024:.1f} KB per compiled channel,"
            f" {per_channel * 1e4 / 2**20:.0f} MB per 10k channels"
        )


if __name__ == "__main__":
    main()
