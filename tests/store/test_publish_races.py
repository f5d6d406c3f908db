"""Publishing under pressure, on a real redis-server: 20 publishers racing on one channel through
`deployd.publishing`, and a publisher SIGKILLed at random moments. Whatever happens, every
publish reported as applied is in history under its sequence, none is reported that was not,
and a reader only ever sees a complete old or complete new document."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from deployd.channels import Channel, channel_digest, channel_from_document, parse_channel_text
from deployd.errors import PreconditionFailedError
from deployd.publishing import PublishResult, publish_channel, seed_store, summarize
from deployd.store import ChannelRecord
from deployd.store.redis import RedisStore
from tests.support.factories import CHANNEL_YAML, write_channels

pytestmark = pytest.mark.redis_server

PUBLISHERS = 20
ROUNDS = 5
REPO = Path(__file__).resolve().parents[2]


def channel(publisher: int, round: int) -> tuple[Channel, str]:
    text = CHANNEL_YAML.format(name="stable").replace(
        "description: Test channel stable.", f"description: publisher {publisher} round {round}."
    )
    return parse_channel_text(text, filename="stable.yaml", expected_name="stable"), text


def assert_whole(record: ChannelRecord, known: dict[str, dict]) -> None:
    """A record is one publish, complete: its digest is its document's and a known document's."""
    assert record.digest == channel_digest(record.document)
    assert known[record.digest] == record.document
    assert channel_from_document(record.document).name == "stable"


@pytest.fixture
def seeded(real_redis, redis_server, tmp_path):
    seed_store(RedisStore(real_redis), write_channels(tmp_path / "channels", ("stable",)))
    return redis_server.url


def test_twenty_publishers_racing_lose_nothing(seeded, real_redis):
    documents = {i: [channel(i, r) for r in range(ROUNDS)] for i in range(PUBLISHERS)}
    known = {channel_digest(c.document): c.document for cs in documents.values() for c, _ in cs}
    seed = RedisStore(real_redis).get_channel("stable")
    known[seed.digest] = seed.document
    start = threading.Barrier(PUBLISHERS + 1)
    done = threading.Event()
    conflicts = [0] * PUBLISHERS

    def publisher(i: int) -> list[PublishResult]:
        # Each publisher has its own connection, as separate processes would. Odd ones publish
        # over the sequence they read (If-Match) and retry on 412; even ones publish blindly.
        store = RedisStore.from_url(seeded)
        results = []
        start.wait(timeout=10)
        for ch, text in documents[i]:
            while True:
                expected = None
                if i % 2:
                    expected = store.get_channel("stable").sequence
                try:
                    results.append(
                        publish_channel(
                            store, ch, source=text, publisher=f"p{i}", expected_sequence=expected
                        )
                    )
                    break
                except PreconditionFailedError:
                    conflicts[i] += 1
        store.close()
        return results

    def reader() -> list[ChannelRecord]:
        store = RedisStore.from_url(seeded)
        seen = []
        start.wait(timeout=10)
        while not done.is_set():
            seen.append(store.get_channel("stable"))
        store.close()
        return seen

    started = time.monotonic()
    with ThreadPoolExecutor(PUBLISHERS + 1) as pool:
        read = pool.submit(reader)
        futures = [pool.submit(publisher, i) for i in range(PUBLISHERS)]
        results = {i: f.result(timeout=60) for i, f in enumerate(futures)}
        done.set()
        seen = read.result(timeout=60)
    elapsed = time.monotonic() - started

    store = RedisStore(real_redis)
    history = store.history("stable")
    total = PUBLISHERS * ROUNDS
    # Every publish applied, each with its own sequence: 2 .. total+1 after the seed's 1.
    reported = sorted(r.record.sequence for rs in results.values() for r in rs)
    assert reported == list(range(2, total + 2))
    assert all(r.changed for rs in results.values() for r in rs)
    assert [r.sequence for r in history] == list(range(1, total + 2))
    for i, rs in results.items():
        sequences = [r.record.sequence for r in rs]
        assert sequences == sorted(sequences) and len(set(sequences)) == ROUNDS
        for result, (ch, text) in zip(rs, documents[i], strict=True):
            entry = history[result.record.sequence - 1]
            assert entry == result.record
            assert (entry.document, entry.source, entry.publisher) == (ch.document, text, f"p{i}")
    # Each summary compares with the document it really replaced.
    for before, after in zip(history, history[1:], strict=False):
        assert after.summary == summarize(before.document, after.document)
    assert store.get_channel("stable") == history[-1]
    assert store.sequences() == {"stable": total + 1}

    assert len(seen) > 10, "the reader barely ran"
    for record in seen:
        assert_whole(record, known)
        assert record == history[record.sequence - 1]
    sequences = [record.sequence for record in seen]
    assert sequences == sorted(sequences), "a reader saw the channel go back"
    print(
        f"\n{total} publishes by {PUBLISHERS} publishers in {elapsed:.2f}s,"
        f" {sum(conflicts)} If-Match conflicts retried, {len(seen)} reads"
        f" ({len(set(sequences))} distinct sequences seen)"
    )


KILLS = 6


def test_a_publisher_killed_at_random_moments_leaves_old_or_new(seeded, real_redis):
    store = RedisStore(real_redis)
    rng = random.Random(os.environ.get("PYTEST_SEED", "kill"))
    confirmed: list[tuple[int, str]] = []
    for run in range(KILLS):
        loop = subprocess.Popen(
            [sys.executable, "-m", "tests.store.publish_loop", seeded, "deployd:", str(run)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert loop.stdout.readline() == "ready\n"
        # Wait for its first confirmed publish however busy the machine is, let it go on a
        # little, then kill it wherever it happens to be.
        first = loop.stdout.readline()
        assert first, "the publisher died before its first publish"
        time.sleep(rng.uniform(0.03, 0.25))
        loop.send_signal(signal.SIGKILL)
        output, _ = loop.communicate(timeout=60)
        lines = [first, *output.splitlines()]
        confirmed += [(int(s), d) for s, d in (line.split() for line in lines)]

        history = store.history("stable")
        current = store.get_channel("stable")
        assert [r.sequence for r in history] == list(range(1, len(history) + 1))
        assert current == history[-1]
        assert store.sequences() == {"stable": current.sequence}
        for record in history:
            assert record.digest == channel_digest(record.document)
            channel_from_document(record.document, expected_name="stable")
            assert parse_channel_text(record.source, filename="s").document == record.document
    history = store.history("stable")
    assert len({sequence for sequence, _ in confirmed}) == len(confirmed), "a publish counted twice"
    for sequence, digest in confirmed:
        assert history[sequence - 1].digest == digest
    assert len(confirmed) >= KILLS, "every launch confirms a publish before it is killed"
    # At most one publish per kill can have landed without being confirmed on stdout.
    assert len(history) - 1 - len(confirmed) in range(KILLS + 1)
    print(
        f"\n{KILLS} kills: {len(history) - 1} publishes landed, {len(confirmed)} confirmed before"
        f" the kill, history and current consistent after each"
    )
