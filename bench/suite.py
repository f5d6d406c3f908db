"""The benchmark: what is measured, in which order, and the targets deployd must meet.

Every throughput figure is a ratio between two servers measured side by side in the same run,
alternating round by round: deployd against the floor of its stack, a bare WSGI callable answering
the recorded bytes under the same server and settings (bench/baseline_app.py; bare Flask is a
second reference), against nginx serving the same bytes as a static file (the machine's ceiling),
and deployd on a 10,000-channel store against deployd on a 3-channel store. It all runs under
gunicorn and under granian in turn (`--server`). Absolute figures on a shared 2-core machine drift
by 10% or more from one minute to the next; such ratios hold.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.load import LoadError, LoadResult, Request, default_generator, fetch, run_load
from bench.servers import (
    REPO,
    SERVERS,
    AppServer,
    NginxStatic,
    RedisServer,
    cpu_seconds,
    free_port,
    nginx_available,
    worker_rss_bytes,
)
from bench.world import (
    basic_auth,
    channel_document,
    channel_yaml,
    issue_licenses,
    load_large_store,
    make_keys,
    publish_yaml,
    sign_licenses,
)
from deployd.protocol import SPEC_PATH, VALIDATE_PATH
from deployd.store.redis import RedisStore

CHANNELS = ["stable", "beta", "edge"]
# Responses carry these per connection or per moment; the baseline sends everything else verbatim.
TRANSPORT_HEADERS = {"date", "server", "connection", "content-length", "transfer-encoding"}
# High enough never to refuse a benchmark request, while the limiter still counts every one.
UNREACHED_RATE_LIMIT = str(10**12)
MB = 1024 * 1024
MAX_WARMUP_SECONDS = 40.0
# Every worker verifies each of 100,000 licenses once before the steady state is reached.
MAX_FLEET_WARMUP_SECONDS = 900.0
# With 4 workers taking connections at random, a request sent 20 times missed a given worker
# with probability (3/4)**20 = 0.3%.
WARMUP_SENDS = 20
# A publish watch that saw fewer answers after the publish proves nothing.
MIN_WATCHED_ANSWERS = 200
WATCH_LIMIT_SECONDS = 30.0
# Metrics on may cost the poll at most 3% more CPU (docs/performance.md, *What counting metrics
# costs*).
METRICS_MIN_RATIO = 0.97


@dataclass(frozen=True)
class Options:
    duration: float  # seconds of each measured load run
    rounds: int  # alternations of the two sides per path
    warmup: float  # seconds of each unmeasured warm-up run
    connections: int
    licenses: int
    active_channels: int  # of the 10,000 channels, how many the fleet polls
    generator: str  # "wrk" or "python"
    servers: tuple[str, ...] = ("gunicorn",)  # deployd and the baselines run under each in turn
    scale_channels: int = 10_000
    scale_releases_each: int = 10
    scale_revocations: int = 100_000
    publish_releases: int = 1_000
    visibility_window: float = 2.5  # how long after a publish workers are watched
    fleet_only: bool = False  # measure only fleet recording on against off
    metrics_only: bool = False  # measure only the poll with metrics on against off
    metrics_control: bool = False  # both servers of the metrics pair off (an A/A run)
    fleet_licenses: int = 100_000  # distinct licenses of the fleet-size scenario
    fleet_size_only: bool = False  # measure only the fleet-size scenarios (issue 15, part 2)


@dataclass(frozen=True)
class Target:
    name: str
    value: float
    limit: float
    at_least: bool  # True: value >= limit passes; False: value < limit passes
    unit: str

    @property
    def met(self) -> bool:
        return self.value >= self.limit if self.at_least else self.value < self.limit

    def describe(self) -> str:
        digits = 0 if self.unit == "MB" else 2
        space = "" if self.unit == "x" else " "
        shown = f"{self.value:.{digits}f}{space}{self.unit}"
        limit = f"{self.limit:.{digits}f}{space}{self.unit}"
        verdict = "ok    " if self.met else "MISSED"
        sign = ">=" if self.at_least else "<"
        return f"{verdict}  {self.name:<40} {shown:>10}  (target {sign} {limit})"


@dataclass(frozen=True)
class Side:
    """One server driven with one list of requests."""

    label: str
    server: AppServer | NginxStatic
    requests: list[Request]


@dataclass
class Comparison:
    """Alternating load runs of two sides on one path: `subject` measured against `reference`."""

    name: str
    reference: Side
    subject: Side
    results: dict[str, list[LoadResult]] = field(default_factory=dict)
    # Per side, CPU microseconds its server spent per request answered, run by run (when asked).
    cpu: dict[str, list[float]] = field(default_factory=dict)

    def _median(self, side: Side, attribute: str) -> float:
        values: list[float] = [getattr(r, attribute) for r in self.results[side.label]]
        return statistics.median(values)

    def medians(self, side: Side) -> tuple[float, float]:
        """(req/s, p99 ms) of `side`, medians over the rounds."""
        return self._median(side, "rps"), self._median(side, "p99_ms")

    @property
    def ratio(self) -> float:
        return self._median(self.subject, "rps") / self._median(self.reference, "rps")

    @property
    def cpu_ratio(self) -> float:
        """The reference's CPU per request over the subject's (medians): below 1 when the subject
        costs more."""
        reference = statistics.median(self.cpu[self.reference.label])
        return reference / statistics.median(self.cpu[self.subject.label])

    @property
    def p99_ratio(self) -> float:
        return self._median(self.subject, "p99_ms") / self._median(self.reference, "p99_ms")

    def row(self) -> str:
        cells = [
            f"{side.label:<12} {self._median(side, 'rps'):>6.0f}/s"
            f" {self._median(side, 'p50_ms'):>5.1f} {self._median(side, 'p99_ms'):>5.1f}"
            for side in (self.reference, self.subject)
        ]
        return f"{self.name:<18} {cells[0]}   {cells[1]}   {self.ratio:>5.2f}x"


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}")
        return value

    return parse


def parse_options(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs (about a minute)")
    parser.add_argument(
        "--rounds", type=_bounded(1, 10), help="alternations of the two sides per path"
    )
    parser.add_argument("--duration", type=_bounded(1, 60), help="seconds of each measured run")
    parser.add_argument(
        "--connections", type=_bounded(1, 256), default=16, help="concurrent clients (16)"
    )
    parser.add_argument(
        "--generator",
        choices=["wrk", "python"],
        default=default_generator(),
        help="load generator (default: wrk when installed, else python)",
    )
    parser.add_argument(
        "--fleet-only",
        action="store_true",
        help="measure only the poll with fleet check-in recording on against off",
    )
    parser.add_argument(
        "--metrics-only",
        action="store_true",
        help="measure only the poll (200 and 304) with metrics on against off",
    )
    parser.add_argument(
        "--metrics-control",
        action="store_true",
        help="with --metrics-only: both servers of the side-by-side pair with metrics off (A/A)",
    )
    parser.add_argument(
        "--fleet-size-only",
        action="store_true",
        help="measure only 100k licenses against 1k and all 10k channels against 3",
    )
    parser.add_argument(
        "--fleet-licenses",
        type=_bounded(100, 10_000_000),
        default=100_000,
        help="distinct licenses of the fleet-size scenario (100000)",
    )
    parser.add_argument(
        "--server",
        choices=[*SERVERS, "both"],
        default="both",
        help="run deployd and the baselines under gunicorn, granian or both in turn (both)",
    )
    args = parser.parse_args(argv)
    servers = SERVERS if args.server == "both" else (args.server,)
    if "granian" in servers and importlib.util.find_spec("granian") is None:
        parser.error("granian is not installed: pip install -e '.[granian]' (or --server gunicorn)")
    duration = args.duration or (2 if args.quick else 3)
    return Options(
        duration=duration,
        rounds=args.rounds or (2 if args.quick else 5),
        warmup=1 if args.quick else 2,
        connections=args.connections,
        # --quick: a smaller fleet, so the caches are warm sooner.
        licenses=500 if args.quick else 1_000,
        active_channels=500 if args.quick else 1_000,
        generator=args.generator,
        fleet_only=args.fleet_only,
        metrics_only=args.metrics_only,
        metrics_control=args.metrics_control,
        fleet_licenses=args.fleet_licenses,
        fleet_size_only=args.fleet_size_only,
        servers=servers,
    )


def main(argv: list[str]) -> int:
    options = parse_options(argv)
    started = time.monotonic()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    with tempfile.TemporaryDirectory(prefix="deployd-bench-") as tmp, ExitStack() as stack:
        bench = Bench(options, Path(tmp), stack)
        targets = bench.run()
    print(f"machine: load average {os.getloadavg()[0]:.2f} at the end (other work skews figures)")
    for target in targets:
        print(target.describe())
    missed = [t for t in targets if not t.met]
    elapsed = time.monotonic() - started
    figures = ", ".join(f"{t.name.split(':')[0]} {t.value:.2f}{t.unit}" for t in targets)
    if missed:
        print(
            f"bench: MISSED {len(missed)} of {len(targets)} targets in {elapsed:.0f} s: {figures}"
        )
        return 1
    print(f"bench: all {len(targets)} targets met in {elapsed:.0f} s: {figures}")
    return 0


class Bench:
    def __init__(self, options: Options, directory: Path, stack: ExitStack) -> None:
        self.options = options
        self.directory = directory
        self.stack = stack
        # Set by start(); the servers of the section being measured by run_server().
        self.redis: RedisServer
        self.store: RedisStore
        self.nginx: NginxStatic | None = None
        self.server = options.servers[0]
        self.deployd: AppServer
        self.baseline: AppServer | None = None  # not started by the one-part modes
        self.large: AppServer
        self.large_store: RedisStore | None = None
        self.large_names: list[str] = []
        # (row, server) -> (req/s, p99 ms): the medians of every side measured, for the table.
        self.figures: dict[tuple[str, str], tuple[float, float]] = {}

    def log(self, message: str) -> None:
        print(message, flush=True)

    # --- setup

    def start(self) -> None:
        redis_dir = self.directory / "redis"
        redis_dir.mkdir()
        self.redis = RedisServer(free_port(), str(redis_dir))
        self.redis.start()
        self.stack.callback(self.redis.stop)
        self.store = RedisStore.from_url(self.redis.url)
        # As `deployd store init` does: a store without an epoch serves nothing.
        self.store.initialize()
        self.keys = make_keys(self.directory / "keys")
        for name in CHANNELS:
            publish_yaml(self.store, channel_yaml(channel_document(name, 6)), name=name)
        self.licenses = issue_licenses(self.keys, CHANNELS, self.options.licenses)

        # The responses are recorded from deployd under the first server; every section starts
        # its own deployd.
        recorder = self._start_deployd(self.redis.url, "deployd-recorded.log", self.stack)
        self.spec_requests = [Request("GET", SPEC_PATH, basic_auth(x)) for x in self.licenses]
        self.validate_requests = [
            Request("POST", VALIDATE_PATH, body=json.dumps({"license": x})) for x in self.licenses
        ]
        etags = self._etags(recorder, self.spec_requests)
        self.not_modified_requests = [
            Request("GET", SPEC_PATH, r.authorization, if_none_match=etag)
            for r, etag in zip(self.spec_requests, etags, strict=True)
        ]
        recorded = {
            "spec": self._record(recorder, self.spec_requests[0], 200),
            "not_modified": self._record(recorder, self.not_modified_requests[0], 304),
            "validate": self._record(recorder, self.validate_requests[0], 200),
        }
        recorder.stop()
        self.responses = self.directory / "responses.json"
        self.responses.write_text(json.dumps(recorded))
        spec_body = recorded["spec"]["body"].encode()
        self.spec_bytes = len(spec_body)
        if nginx_available():
            self.nginx = NginxStatic(self.directory / "nginx", SPEC_PATH, spec_body)
            self.nginx.start()
            self.stack.callback(self.nginx.stop)
        else:
            self.log(
                "nginx: not installed (Debian: apt-get install nginx); the ceiling comparison"
                " (spec 200 against nginx serving the same bytes as a static file) is SKIPPED"
            )

    def _start_deployd(
        self,
        redis_url: str,
        log_name: str,
        stack: ExitStack,
        extra_env: dict[str, str] | None = None,
    ) -> AppServer:
        server = AppServer(
            "deployd.wsgi:app",
            {
                "REDIS_URL": redis_url,
                "DEPLOYD_KEYS_DIR": str(self.keys.license_keys_dir),
                "DEPLOYD_SIGNING_KEY": str(self.keys.signing_key),
                "DEPLOYD_RATE_LIMIT_PER_MINUTE": UNREACHED_RATE_LIMIT,
                "DEPLOYD_RATE_LIMIT_PER_ADDRESS_PER_MINUTE": UNREACHED_RATE_LIMIT,
                # Counted only where a comparison asks for it (run_metrics).
                "DEPLOYD_METRICS": "off",
                **(extra_env or {}),
            },
            self.directory / f"{self.server}-{log_name}",
            self.server,
        )
        server.start()
        stack.callback(server.stop)
        server.wait_for_every_view()
        return server

    def _start_baseline(self, app: str, stack: ExitStack) -> AppServer:
        """A baseline app of bench/baseline_app.py under the section's server."""
        name = app.rsplit(":", 1)[1]
        server = AppServer(
            app,
            {"BENCH_RESPONSES": str(self.responses)},
            self.directory / f"{self.server}-baseline-{name}.log",
            self.server,
        )
        server.start()
        stack.callback(server.stop)
        return server

    def _etags(self, server: AppServer, requests: list[Request]) -> list[str]:
        def etag_of(request: Request) -> str:
            status, raw = fetch(server.address, request)
            if status != 200:
                raise RuntimeError(f"deployd answered {status} to a valid license:\n{raw[:500]!r}")
            return _headers(raw)["etag"]

        with ThreadPoolExecutor(8) as pool:
            return list(pool.map(etag_of, requests))

    def _record(self, server: AppServer, request: Request, status: int) -> dict[str, Any]:
        got, raw = fetch(server.address, request)
        if got != status:
            raise RuntimeError(f"deployd answered {got}, expected {status}:\n{raw[:500]!r}")
        head, _, body = raw.partition(b"\r\n\r\n")
        headers = [
            (name, value)
            for name, value in _header_pairs(head)
            if name.lower() not in TRANSPORT_HEADERS
        ]
        return {"headers": headers, "body": body.decode()}

    # --- measuring

    def compare(
        self,
        name: str,
        reference: Side,
        subject: Side,
        status: int,
        *,
        cold: bool = False,
        max_warmup: float = MAX_WARMUP_SECONDS,
        cpu: bool = False,
        cold_reference: bool = False,
    ) -> Comparison:
        """Alternate the two sides on one path; `cold` when the subject's caches have not seen
        its requests yet (`cold_reference`: the reference's either); with `cpu`, also note the
        CPU time each side's server spent per request."""
        options = self.options
        result = Comparison(name, reference, subject)

        def drive(side: Side, seconds: float) -> LoadResult:
            try:
                return run_load(
                    side.server.address,
                    side.requests,
                    expected_status=status,
                    duration=seconds,
                    connections=options.connections,
                    work_dir=self.directory,
                    generator=options.generator,
                )
            except LoadError as e:
                raise LoadError(f"{name}, {side.label}: {e}\n{side.server.log_tail()}") from None

        # Warm-up: a fleet polls a long-running server, whose workers have long verified each
        # license, compiled each channel and rendered each spec; that steady state is measured.
        # Cold requests are sent until each went out WARMUP_SENDS times on average (so each
        # reached every worker, connections being handed to workers at random) and throughput
        # stopped rising.
        def warm(side: Side, cold: bool) -> None:
            sent, previous = 0, 0.0
            wanted = WARMUP_SENDS * len(side.requests) if cold else 0
            give_up = time.monotonic() + max_warmup
            while time.monotonic() < give_up:
                run = drive(side, options.warmup)
                sent += run.requests
                if sent >= wanted and run.rps < previous * 1.1:
                    break
                previous = run.rps

        warm(subject, cold)
        if cold_reference:
            warm(reference, True)
        else:
            drive(reference, options.warmup)
        for round_number in range(options.rounds):
            order = [reference, subject]
            if round_number % 2:
                order.reverse()  # ABBA order cancels a steady drift
            for side in order:
                cpu_before = side.server.cpu_seconds() if cpu else 0.0
                run = drive(side, options.duration)
                result.results.setdefault(side.label, []).append(run)
                if cpu:
                    spent = side.server.cpu_seconds() - cpu_before
                    result.cpu.setdefault(side.label, []).append(spent / run.requests * 1e6)
        self.log(result.row())
        for side in (reference, subject):
            # deployd's row shows its first measurement on the path (against the bare WSGI app).
            self.figures.setdefault((f"{side.label} {name}", self.server), result.medians(side))
        return result

    def run(self) -> list[Target]:
        options = self.options
        self.log(
            "deployd bench: starting redis-server, nginx and, under"
            f" {' and '.join(options.servers)} in turn, deployd and the baselines on loopback"
        )
        self.start()
        targets: list[Target] = []
        ceilings: dict[str, float] = {}
        for server in options.servers:
            self.server = server
            with ExitStack() as section:  # this server's processes stop before the next's start
                targets += self.run_server(section, ceilings)
        if ceilings:
            best = max(ceilings, key=lambda server: ceilings[server])
            targets.append(
                Target(f"ceiling: spec 200 vs nginx ({best})", ceilings[best], 0.35, True, "x")
            )
        self.print_table()
        return targets

    def run_server(self, section: ExitStack, ceilings: dict[str, float]) -> list[Target]:
        """Every measurement of deployd and the baselines under `self.server`."""
        options, server = self.options, self.server
        self.deployd = self._start_deployd(self.redis.url, "deployd.log", section)
        workers = len(self.deployd.worker_pids())
        self.log(
            f"== {server}: {workers} workers; load: {options.generator}, {options.connections}"
            f" connections, {options.rounds} rounds x {options.duration} s per side;"
            f" {len(self.licenses)} licenses; spec body {self.spec_bytes} bytes"
        )
        side = f"{'req/s':>8} {'p50':>5} {'p99':>5}"
        self.log(f"{'path':<18} {'reference':<12} {side}   {'measured':<12} {side}   ratio")
        if options.metrics_only:
            return self.metrics_targets(section)
        if options.fleet_size_only:
            return self.fleet_size_targets(section)
        recording = self.run_fleet_recording(section)
        fleet_target = Target(f"{server} fleet: check-ins on vs off", recording, 0.95, True, "x")
        if options.fleet_only:
            return [fleet_target]
        baseline = self.baseline = self._start_baseline("bench.baseline_app:bare", section)
        flask = self._start_baseline("bench.baseline_app:app", section)
        deployd = Side("deployd", self.deployd, self.spec_requests)
        spec = self.compare(
            "spec 200",
            Side("bare WSGI", baseline, self.spec_requests),
            deployd,
            200,
            cold=True,
        )
        not_modified = self.compare(
            "spec 304",
            Side("bare WSGI", baseline, self.not_modified_requests),
            Side("deployd", self.deployd, self.not_modified_requests),
            304,
        )
        validate = self.compare(
            "licenses/validate",
            Side("bare WSGI", baseline, self.validate_requests),
            Side("deployd", self.deployd, self.validate_requests),
            200,
        )
        # The second reference, reported with no target: what a Flask view costs over the floor.
        self.compare("spec 200", Side("bare Flask", flask, self.spec_requests), deployd, 200)
        if self.nginx is not None:
            ceiling = self.compare(
                "spec 200", Side("nginx static", self.nginx, self.spec_requests), deployd, 200
            )
            ceilings[server] = ceiling.ratio
        scale, rss = self.run_scale(section)
        fleet_size = self.fleet_size_targets(section, scale_loaded=True)
        publish_seconds, visible_after, busy = self.run_publish()
        self.log(f"publish: workers that served during the watch: {busy}/{workers}")
        self.log("(latencies p50 and p99 in ms; req/s, p50 and p99 are medians over the rounds)")
        return [
            Target(f"{server} spec 200: req/s vs bare WSGI", spec.ratio, 0.90, True, "x"),
            Target(f"{server} spec 200: p99 vs bare WSGI", spec.p99_ratio, 1.2, False, "x"),
            Target(f"{server} spec 304: req/s vs bare WSGI", not_modified.ratio, 0.95, True, "x"),
            Target(f"{server} validate: req/s vs bare WSGI", validate.ratio, 0.85, True, "x"),
            Target(f"{server} scale: 10k channels vs 3", scale.ratio, 0.95, True, "x"),
            Target(f"{server} scale: largest worker RSS", rss / MB, 150, False, "MB"),
            *fleet_size,
            Target(f"{server} publish: 1,000 releases", publish_seconds, 1.0, False, "s"),
            Target(f"{server} publish: every worker serves it", visible_after, 1.0, False, "s"),
            fleet_target,
            *self.metrics_targets(section),
        ]

    def metrics_targets(self, section: ExitStack) -> list[Target]:
        """What counting metrics costs a poll, 200 and 304: at most 3% of its CPU."""
        spec, not_modified = self.run_metrics(section)
        return [
            Target(
                f"{self.server} metrics: spec {name} CPU share kept",
                ratio,
                METRICS_MIN_RATIO,
                True,
                "x",
            )
            for name, ratio in (("200", spec), ("304", not_modified))
        ]

    def run_metrics(self, section: ExitStack) -> tuple[float, float]:
        """For the poll (200, then 304): the CPU a request costs the server with metrics off over
        what it costs with them on, the server's CPU time per request (measured here, under load)
        plus the extra time counting takes, measured in one process (bench/metrics_cost.py).
        0.97 means metrics cost 3% more.

        Why not two servers, one counting and one not: in A/A runs on the 2-core bench machine
        (both sides off, --metrics-control) identical deployds differed by up to 19% in CPU per
        request and 15% in throughput, and by 6% still when measured in two pairs started in
        opposite orders; a difference of 3% cannot be seen that way. The pair is still measured
        and logged (on a second deployd, counting, on the same Redis), for the record."""
        control = self.options.metrics_control
        if control:
            self.log("metrics: A/A control run, both servers with metrics off")
        counted = self._start_deployd(
            self.redis.url,
            "deployd-metrics.log",
            section,
            {"DEPLOYD_METRICS": "off" if control else "open"},
        )
        extra = self._metrics_extra_microseconds()
        ratios = []
        for name, requests, status in (
            ("spec 200", self.spec_requests, 200),
            ("spec 304", self.not_modified_requests, 304),
        ):
            on = Side("metrics on", counted, requests)
            off = Side("metrics off", self.deployd, requests)
            pair = self.compare(name, off, on, status, cold=True, cold_reference=True, cpu=True)
            cpu_off = statistics.median(pair.cpu["metrics off"])
            cpu_on = statistics.median(pair.cpu["metrics on"])
            ratios.append(cpu_off / (cpu_off + extra[name]))
            self.log(
                f"metrics: {name}: the server spends {cpu_off:.0f} us CPU per request; counting"
                f" adds {extra[name]:.1f} us (in one process): {ratios[-1]:.3f}x."
                f" Two servers side by side (for the record): {cpu_on:.0f} us on, {cpu_off:.0f}"
                f" off; throughput on/off {pair.ratio:.3f}x"
            )
        return ratios[0], ratios[1]

    def _metrics_extra_microseconds(self) -> dict[str, float]:
        """bench/metrics_cost.py's figures for this section's server, from a process of its own
        (prometheus-client must be imported there after the multiprocess directory is named);
        `-m` from the checkout finds the bench package."""
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        gevent = ["--gevent"] if self.server == "gunicorn" else []  # its workers are gevent's
        result = subprocess.run(
            [sys.executable, "-m", "bench.metrics_cost", *gevent],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=600,
            check=True,
        )
        figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
        return figures

    def print_table(self) -> None:
        """Every side measured, one column per server (medians; each ratio above compares two
        sides measured alternately, which the absolute figures here do not)."""
        servers = self.options.servers
        rows = list(dict.fromkeys(row for row, _ in self.figures))
        self.log("figures side by side: req/s and p99 ms, medians over the rounds")
        self.log(f"{'':<32}" + "".join(f"{server:>20}" for server in servers))
        for row in rows:
            cells = []
            for server in servers:
                figure = self.figures.get((row, server))
                cells.append(f"{figure[0]:>10.0f}/s {figure[1]:>6.1f}" if figure else f"{'-':>20}")
            self.log(f"{row:<32}" + "".join(f"{cell:>20}" for cell in cells))

    def run_fleet_recording(self, section: ExitStack) -> float:
        """Requests per second of deployd with fleet check-in recording on (the default, the
        section's deployd) over the same deployd with it off (a second one on the same Redis),
        side by side. Measured twice, each side once the cold subject warmed up before the
        rounds and once the reference, and combined as the geometric mean of the two ratios, so
        whatever the subject's position favours cancels out."""
        unrecorded = self._start_deployd(
            self.redis.url, "deployd-unrecorded.log", section, {"DEPLOYD_FLEET_RECORDING": "0"}
        )
        on = Side("recording on", self.deployd, self.spec_requests)
        off = Side("recording off", unrecorded, self.spec_requests)
        on_over_off = self.compare("fleet on/off", off, on, 200, cold=True).ratio
        off_over_on = self.compare("fleet off/on", on, off, 200, cold=True).ratio
        unrecorded.stop()
        combined = math.sqrt(on_over_off / off_over_on)
        self.log(f"fleet check-ins: recording on runs at {combined:.2f}x recording off")
        return combined

    def run_scale(self, section: ExitStack) -> tuple[Comparison, int]:
        """A second deployd on a store of 10,000 channels (loaded once, for the first server),
        measured against the section's (3 channels) side by side; (the comparison, the largest
        worker RSS of the second)."""
        options = self.options
        url = f"redis://127.0.0.1:{self.redis.port}/1"
        if self.large_store is None:
            self.large_store = RedisStore.from_url(url)
            client = redis.Redis.from_url(url)
            began = time.monotonic()
            self.large_names = load_large_store(
                client,
                self.large_store,
                channels=options.scale_channels,
                releases_each=options.scale_releases_each,
                revoked=options.scale_revocations,
            )
            client.close()
            # As `deployd store init` does: a store without an epoch serves nothing (503).
            self.large_store.initialize()
            self.log(
                f"scale: loaded {options.scale_channels} channels x {options.scale_releases_each}"
                f" releases and {options.scale_revocations} revocations in"
                f" {time.monotonic() - began:.1f} s (a Redis pipeline in the store's key layout)"
            )
        names = self.large_names
        self.large = self._start_deployd(url, "deployd-large.log", section)
        # The fleet polls `active_channels` of the channels (its working set): each worker compiles
        # them and renders their specs; the others are in the store only. A worker's memory grows
        # with the working set, by the figure per active channel printed below.
        spread = names[:: max(1, len(names) // options.active_channels)]
        licenses = issue_licenses(self.keys, spread, options.licenses)
        requests = [Request("GET", SPEC_PATH, basic_auth(x)) for x in licenses]
        result = self.compare(
            "spec 200 at scale",
            Side("3 channels", self.deployd, self.spec_requests),
            Side("10k channels", self.large, requests),
            200,
            cold=True,
        )
        small, large = _largest_rss(self.deployd), _largest_rss(self.large)
        baseline = ""
        if self.baseline is not None:
            baseline = f", bare WSGI {_largest_rss(self.baseline) / MB:.0f} MB"
        self.log(
            f"scale: largest worker RSS {large / MB:.0f} MB (3-channel deployd {small / MB:.0f} MB"
            f"{baseline}): about"
            f" {(large - small) / 1024 / options.active_channels:.0f} KB per active channel,"
            " the revocations and sequences included"
        )
        return result, large

    def fleet_size_targets(self, section: ExitStack, *, scale_loaded: bool = False) -> list[Target]:
        """The targets of issue 15, part 2 under `self.server` (loading the 10k-channel store
        and its deployd first unless `run_scale` did)."""
        if not scale_loaded:
            self.run_scale(section)
        licenses, channels, rss = self.run_fleet_size()
        server = self.server
        fleet = f"{self.options.fleet_licenses:,} licenses vs {len(self.licenses):,}"
        return [
            Target(f"{server} fleet: {fleet}", licenses.ratio, 0.9, True, "x"),
            Target(f"{server} fleet: all 10k channels vs 3", channels.ratio, 0.9, True, "x"),
            Target(f"{server} fleet: largest worker RSS", rss / MB, 200, False, "MB"),
        ]

    def run_fleet_size(self) -> tuple[Comparison, Comparison, int]:
        """Issue 15, part 2: polls by `fleet_licenses` distinct licenses against polls by the
        bench's 1,000 (the 3-channel deployd), then polls spread over every channel of the
        large store against 3 channels; (the two comparisons, the largest worker RSS of either
        deployd after both). Each worker verifies every license once while warming up."""
        options = self.options
        began = time.monotonic()
        fleet = sign_licenses(self.keys, CHANNELS, options.fleet_licenses)
        self.log(f"fleet: signed {len(fleet)} licenses in {time.monotonic() - began:.1f} s")
        many = [Request("GET", SPEC_PATH, basic_auth(x)) for x in fleet]
        licenses = self.compare(
            "spec 200, many lic.",
            Side("few licenses", self.deployd, self.spec_requests),
            Side("many licenses", self.deployd, many),
            200,
            cold=True,
            max_warmup=MAX_FLEET_WARMUP_SECONDS,
        )
        assert self.large_store is not None
        names = sorted(self.large_store.sequences())
        spread = sign_licenses(self.keys, names, len(names))
        everywhere = [Request("GET", SPEC_PATH, basic_auth(x)) for x in spread]
        channels = self.compare(
            "spec 200, all ch.",
            Side("3 channels", self.deployd, self.spec_requests),
            Side("all channels", self.large, everywhere),
            200,
            cold=True,
            max_warmup=MAX_FLEET_WARMUP_SECONDS,
        )
        rss = max(_largest_rss(self.deployd), _largest_rss(self.large))
        self.log(f"fleet: largest worker RSS {rss / MB:.0f} MB")
        return licenses, channels, rss

    def run_publish(self) -> tuple[float, float, int]:
        """(slowest of two publishes, seconds until every worker served the next one, workers).

        On the 10,000-channel store and its deployd: every worker's refresh then reads all the
        sequences, the worst case for how soon a publish is served.
        """
        options = self.options
        store, server = self.large_store, self.large
        assert store is not None
        document = channel_document("big", options.publish_releases)
        timings = []
        for rollout in (50, 60):
            document["releases"][-1]["rollout"] = rollout
            text = channel_yaml(document)
            began = time.monotonic()
            publish_yaml(store, text, name="big")
            timings.append(time.monotonic() - began)
        self.log(
            f"publish: {options.publish_releases}-release channel ({len(text) // 1024} KB YAML):"
            f" created in {timings[0]:.3f} s, updated in {timings[1]:.3f} s"
        )
        licenses = issue_licenses(self.keys, ["big"], 64)
        requests = [Request("GET", SPEC_PATH, basic_auth(x)) for x in licenses]
        document["releases"][-1]["rollout"] = 100
        text = channel_yaml(document)
        with Poller(server.address, requests) as poller:
            time.sleep(1.0)  # every worker has compiled sequence 2 and is answering from memory
            pids = server.worker_pids()
            cpu_before = {pid: cpu_seconds(pid) for pid in pids}
            began = time.monotonic()
            sequence = publish_yaml(store, text, name="big")
            published = time.monotonic()
            answered_before = poller.answered()
            # Watch for at least the window and MIN_WATCHED_ANSWERS answers, for at most 30 s.
            while time.monotonic() < published + WATCH_LIMIT_SECONDS and (
                time.monotonic() < published + options.visibility_window
                or poller.answered() - answered_before < MIN_WATCHED_ANSWERS
            ):
                time.sleep(0.1)
            busy = sum(cpu_seconds(pid) > cpu_before[pid] for pid in pids)
            answers = sorted(poller.stop())
        after = [(start, end, seq) for start, end, seq in answers if start >= published]
        stale = [end for _, end, seq in after if seq < sequence]
        errors = [seq for _, _, seq in answers if seq < 0]
        if errors:
            raise RuntimeError(f"publish watch: {len(errors)} requests failed")
        if len(after) < MIN_WATCHED_ANSWERS or after[-1][2] < sequence:
            raise RuntimeError(
                f"publish watch: {len(after)} answers after the publish, the last of sequence"
                f" {after[-1][2] if after else '-'}: too few to tell"
            )
        # The new sequence reached every worker once no answer begun after the publish was stale.
        visible_after = max(stale, default=published) - published
        self.log(
            f"publish: under load, published in {published - began:.3f} s; last stale answer"
            f" {visible_after:.3f} s after; {len(after)} answers watched after it"
        )
        return max(timings), visible_after, busy


class Poller:
    """Fresh-connection GETs from a separate process (so it never competes for this one's GIL),
    recording (start, end, metadata.sequence) with the shared monotonic clock; -1 on a failure."""

    THREADS = 8

    def __init__(self, address: tuple[str, int], requests: list[Request]) -> None:
        context = multiprocessing.get_context("spawn")
        self.stop_event = context.Event()
        self.queue = context.Queue()
        self.count = context.Value("i", 0)
        self.process = context.Process(
            target=_poll,
            args=(address, requests, self.THREADS, self.stop_event, self.queue, self.count),
        )

    def answered(self) -> int:
        """How many answers the poller has had so far."""
        answered: int = self.count.value
        return answered

    def __enter__(self) -> Poller:
        self.process.start()
        return self

    def stop(self) -> list[tuple[float, float, int]]:
        self.stop_event.set()
        answers: list[tuple[float, float, int]] = self.queue.get(timeout=30)
        self.process.join(timeout=10)
        return answers

    def __exit__(self, *exc: object) -> None:
        if self.process.is_alive():
            self.stop_event.set()
            self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


POLL_LIMIT_SECONDS = 90.0


def _poll(
    address: tuple[str, int],
    requests: list[Request],
    threads: int,
    stop_event: Any,
    queue: Any,
    count: Any,
) -> None:
    import threading

    answers: list[tuple[float, float, int]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + POLL_LIMIT_SECONDS

    def client(offset: int) -> None:
        mine = []
        i = offset
        while not stop_event.is_set() and time.monotonic() < deadline:
            request = requests[i % len(requests)]
            i += 1
            began = time.monotonic()
            try:
                status, raw = fetch(address, request)
                sequence = _sequence(raw) if status == 200 else -1
            except OSError:
                sequence = -1
            mine.append((began, time.monotonic(), sequence))
            with count.get_lock():
                count.value += 1
        with lock:
            answers.extend(mine)

    workers = [threading.Thread(target=client, args=(n * 7,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    queue.put(answers)


def _largest_rss(server: AppServer) -> int:
    return max(worker_rss_bytes(pid) for pid in server.worker_pids())


def _sequence(raw: bytes) -> int:
    body = raw.partition(b"\r\n\r\n")[2]
    return int(json.loads(body)["metadata"]["sequence"])


def _header_pairs(head: bytes) -> list[tuple[str, str]]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return [(n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines)]


def _headers(raw: bytes) -> dict[str, str]:
    head = raw.partition(b"\r\n\r\n")[0]
    return {name.lower(): value for name, value in _header_pairs(head)}
