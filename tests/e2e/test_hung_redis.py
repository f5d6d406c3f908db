"""A hung Redis (SIGSTOP: a stuck primary, a partition) under gunicorn or granian with several
workers: every poll of a cached spec is still answered, `/readyz` says the store is unreachable,
and after SIGCONT a publish reaches every poller. Also: the per-license rate limit across several
workers on a real Redis stays within its documented bound.

Polls are judged answered or not (a status within a generous client timeout), never on latency.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from deployd.publishers import new_token, token_hash
from deployd.server.ratelimit import WINDOW_SECONDS, overshoot_bound
from tests.support.factories import CHANNEL_YAML
from tests.support.gunicorn import GunicornServer, redis_setup
from tests.support.redis_server import RedisServer, free_port, require_redis_server

pytestmark = pytest.mark.e2e

SPEC = "/api/v1/operator/channel"
WORKERS = 3
POLLERS = 8
# A poll not answered within this is "not answered" (a hung store used to hold polls for 2 s a
# refresh, queueing the rest behind them).
POLL_TIMEOUT = 3.0


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not _holds(predicate):
        assert time.monotonic() < deadline, f"not seen within {timeout} s"
        time.sleep(0.05)


def _holds(predicate: Callable[[], bool]) -> bool:
    try:
        return predicate()
    except requests.RequestException:
        return False


def readyz_status(url: str) -> int:
    return readyz(url, []).status_code


def readyz(url: str, answers: list[requests.Response]) -> requests.Response:
    """GET /readyz, kept in `answers`."""
    answers.append(requests.get(url + "/readyz", timeout=POLL_TIMEOUT))
    return answers[-1]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, so stopping it disturbs no other test."""
    require_redis_server()
    (tmp_path / "redis").mkdir()
    server = RedisServer(free_port(), str(tmp_path / "redis"))
    server.start()
    try:
        yield server
    finally:
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGCONT)  # whatever happened, let it stop
        server.stop()


def server_events(log: str) -> str:
    """The server's log without its access lines: worker starts and exits, store warnings."""
    return "\n".join(line for line in log.splitlines() if '"GET ' not in line)


def poll(url: str, license: str, etag: str | None = None) -> int | None:
    """The status of one poll, or None when it was not answered in time."""
    answer = poll_explained(url, license, etag)
    return answer if answer is None or isinstance(answer, int) else int(answer.split()[0])


def poll_explained(url: str, license: str, etag: str | None = None) -> int | str | None:
    """The status of one poll, with the error code and message when it is refused, or None
    when it was not answered in time."""
    headers = {"If-None-Match": etag} if etag else {}
    try:
        response = requests.get(
            url + SPEC, auth=("license", license), headers=headers, timeout=POLL_TIMEOUT
        )
    except requests.RequestException:
        return None
    if response.status_code >= 400:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    return response.status_code


def test_polls_are_answered_while_redis_hangs_and_a_publish_after_shows_up(
    tmp_path, own_redis, server_kind
):
    setup = redis_setup(tmp_path, own_redis.url)
    publisher = new_token()
    setup.store.add_publisher("e2e", token_hash(publisher))
    server = GunicornServer(
        {
            **setup.env,
            "DEPLOYD_REFRESH_INTERVAL": "0.1",
            "DEPLOYD_RATE_LIMIT_PER_MINUTE": "100000",
            "DEPLOYD_RATE_LIMIT_PER_ADDRESS_PER_MINUTE": "1000000",
        },
        workers=WORKERS,
        server=server_kind,
    )
    server.start(tmp_path)
    # Every worker must have read the store before it hangs: one still booting would first
    # reach a hung Redis and, knowing no revocation list, refuse every poll (fail closed).
    server.wait_for_every_view()
    try:
        licenses = [setup.kit.issue(channel="stable") for _ in range(POLLERS)]
        first = requests.get(server.url + SPEC, auth=("license", licenses[0]), timeout=10)
        assert first.status_code == 200
        etag = first.headers["ETag"]
        with ThreadPoolExecutor(POLLERS) as pool:
            # Warm every worker: many concurrent polls, so each worker takes its share.
            for _ in range(25):
                warm = list(pool.map(lambda lic: poll(server.url, lic), licenses))
                assert warm == [200] * POLLERS

            stop_polling = threading.Event()
            results: list[int | str | None] = []

            def poller(license: str) -> None:
                n = 0
                while not stop_polling.is_set():
                    results.append(poll_explained(server.url, license, etag if n % 2 else None))
                    n += 1

            pollers = [pool.submit(poller, license) for license in licenses]
            while len(results) < 50:
                time.sleep(0.05)
            assert own_redis.process is not None
            os.kill(own_redis.process.pid, signal.SIGSTOP)
            stopped_at = len(results)
            try:
                deadline = time.monotonic() + 4
                while time.monotonic() < deadline:
                    time.sleep(0.1)
                during = results[stopped_at:]
                assert len(during) > 20, "too few polls while Redis was stopped to say anything"
                unanswered = [status for status in during if status not in (200, 304)]
                assert not unanswered, (
                    f"{len(unanswered)} of {len(during)} polls not answered"
                    f" (status: count, None = no answer in {POLL_TIMEOUT:g} s):"
                    f" {dict(Counter(unanswered))}; the server's log, but for requests:\n"
                    + server_events(server.log())
                )
                # Readiness says so (the background refresh timed out; no request waited).
                # Each worker finds out on its own refresh: judge the 503 answer itself, not a
                # second request, which another worker may answer while it is still ready.
                refusals: list[requests.Response] = []
                wait_for(lambda: readyz(server.url, refusals).status_code == 503)
                ready = refusals[-1].json()
                assert (ready["error"]["code"], ready["store"]) == (
                    "store_unavailable",
                    "unreachable",
                )
            finally:
                os.kill(own_redis.process.pid, signal.SIGCONT)
                stop_polling.set()
            for future in pollers:
                future.result()

        # Recovery: ready again, and a publish shows up on every poll.
        wait_for(lambda: readyz_status(server.url) == 200)
        text = (
            CHANNEL_YAML.format(name="stable")
            + "  - version: 1.3.0\n    chart: {version: 0.13.0}\n"
        )
        published = requests.put(
            server.url + "/api/v1/channels/stable",
            data=text.encode(),
            headers={"Content-Type": "application/yaml", "Authorization": f"Bearer {publisher}"},
            timeout=10,
        )
        assert published.status_code == 200, published.text

        def everyone_sees_it() -> bool:
            with ThreadPoolExecutor(POLLERS) as pool:
                specs = list(
                    pool.map(
                        lambda lic: requests.get(
                            server.url + SPEC, auth=("license", lic), timeout=10
                        ).json(),
                        licenses * 3,
                    )
                )
            return all(spec["metadata"]["release"] == "1.3.0" for spec in specs)

        wait_for(everyone_sees_it)
    finally:
        server.stop()
        setup.store.close()


def test_the_license_limit_holds_across_workers_within_its_bound(
    tmp_path, real_redis, redis_server, server_kind
):
    limit = 60
    setup = redis_setup(tmp_path, redis_server.url)
    server = GunicornServer(
        {
            **setup.env,
            "DEPLOYD_REFRESH_INTERVAL": "0.1",
            "DEPLOYD_RATE_LIMIT_PER_MINUTE": str(limit),
            "DEPLOYD_RATE_LIMIT_PER_ADDRESS_PER_MINUTE": "1000000",
        },
        workers=WORKERS,
        server=server_kind,
    )
    server.start(tmp_path)
    try:
        license = setup.kit.issue(channel="stable")
        windows: set[int] = set()
        statuses: list[int | None] = []
        with ThreadPoolExecutor(POLLERS) as pool:
            while len(statuses) < 600:
                windows.add(int(time.time() // WINDOW_SECONDS))
                statuses += pool.map(lambda _: poll(server.url, license), range(POLLERS))
                windows.add(int(time.time() // WINDOW_SECONDS))
    finally:
        server.stop()
        setup.store.close()
    assert set(statuses) <= {200, 429}, statuses
    admitted = statuses.count(200)
    # Each minute the hammering touched lets at most the README's bound through: 60 a minute on
    # three workers, at most 100 (it was 177).
    assert overshoot_bound(limit, WORKERS) == 100
    assert admitted <= 100 * len(windows), admitted
    assert statuses.count(429) > 0
