"""The release console at scale: `python bench/console.py` loads 100,000 instances across 10,000
licenses into a real redis-server (on loopback, the fleet bench's loader: bench/fleet.py) and
times each console page's server time, in process through Flask's test client, signed in.
Prints milliseconds; exits 1 when a page's median is over TARGET_MS (docs/performance.md)."""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fleet import CHANNELS, FLEET_TARGET_MS, load, releases  # noqa: E402
from bench.servers import RedisServer, free_port  # noqa: E402
from deployd.channels import parse_channel_text  # noqa: E402
from deployd.keyfiles import write_key_pair  # noqa: E402
from deployd.licensing.keyring import generate_private_key  # noqa: E402
from deployd.publishers import Scopes, new_token, token_hash  # noqa: E402
from deployd.publishing import publish_channel  # noqa: E402
from deployd.server.app import create_app  # noqa: E402
from deployd.server.settings import settings_from_env  # noqa: E402
from deployd.store.redis import RedisStore  # noqa: E402

TARGET_MS = 100.0
RUNS = 15
PAGES = {
    "channels": "/console/",
    "channel (edge, chart of 168 h)": "/console/channels/edge",
    "fleet: newest 50": "/console/fleet",
    "fleet: channel=beta, behind 2": "/console/fleet?channel=beta&behind=2",
    "fleet: customer": "/console/fleet?customer=customer-04242",
    "customers": "/console/customers",
    "licenses": "/console/licenses",
    "events": "/console/events",
}
# The `behind` filter scans instances in the store as GET /api/v1/fleet?behind= does; the page
# is held to the fleet API's own target (bench/fleet.py).
OWN_TARGETS = {"fleet: channel=beta, behind 2": FLEET_TARGET_MS}


def channel_yaml(name: str) -> str:
    lines = [f"  - {{version: {v}, chart: {{version: 0.1.0}}}}" for v in releases(name)]
    return f"name: {name}\nchart: {{url: https://charts.example.com, name: app}}\nreleases:\n" + (
        "\n".join(lines) + "\n"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--licenses", type=int, default=10_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="deployd-console-bench-") as tmp:
        redis = RedisServer(free_port(), tmp)
        redis.start()
        try:
            store = RedisStore.from_url(redis.url, timeout=30)
            store.initialize()
            for name in CHANNELS:
                channel = parse_channel_text(channel_yaml(name), filename=f"{name}.yaml")
                publish_channel(store, channel, source=channel_yaml(name), publisher="bench")
            load(store, args.instances, args.licenses, time.time())
            print(f"loaded {args.instances} instances across {args.licenses} licenses")
            return measure(store, redis.url, Path(tmp))
        finally:
            redis.stop()


def measure(store: RedisStore, redis_url: str, tmp: Path) -> int:
    signing_key, _ = write_key_pair(generate_private_key("EdDSA"), tmp / "signing", "spec")
    _, public = write_key_pair(generate_private_key("EdDSA"), tmp / "licenses", "lic")
    settings = settings_from_env(
        {
            "REDIS_URL": redis_url,
            "DEPLOYD_KEYS_DIR": str(public.parent),
            "DEPLOYD_SIGNING_KEY": str(signing_key),
            "DEPLOYD_STATE_DIR": str(tmp / "state"),
        }
    )
    app = create_app(settings, store=store)
    token = new_token()
    admin = Scopes.admin()
    store.add_publisher(
        "bench", token_hash(token), actions=admin.sorted_actions, channels=admin.channels
    )
    client = app.test_client()
    form = client.get("/console/sign-in").text
    csrf = re.search(r'name="csrf_token" value="([0-9a-f]+)"', form)
    assert csrf is not None
    client.post("/console/sign-in", data={"token": token, "csrf_token": csrf.group(1)})
    failed = False
    for name, path in PAGES.items():
        samples = []
        for _ in range(RUNS + 1):
            started = time.perf_counter()
            answer = client.get(path)
            samples.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, (path, answer.status_code)
        median, worst = statistics.median(samples[1:]), max(samples[1:])
        target = OWN_TARGETS.get(name, TARGET_MS)
        failed |= median > target
        print(
            f"{name:<32} {median:6.1f} ms median {worst:6.1f} ms worst"
            f"  (target {target:.0f} ms; {len(answer.data)} bytes)"
        )
    verdict = "MISSED" if failed else "met"
    print(f"console bench: targets {verdict} (median under each page's target)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
