"""The poll path's tally (deployd.metrics.tally): counts kept in memory until a flush, then exposed
exactly as the same increments and observations made one by one would be."""

from __future__ import annotations

import os
import threading

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from deployd.metrics.registry import REQUEST_BUCKETS
from deployd.metrics.tally import Tally

# Zero, below the first bound, on bounds and just past one, past the last (+Inf), and at least
# one in every bucket.
OBSERVED = [
    *(0.0, 0.0001, 0.0005, 0.00050001, 0.001, 0.002, 0.003, 0.007, 0.02, 0.04, 0.1, 0.2, 0.4),
    *(0.7, 2.5, 3, 9.99, 10, 11, 600),
]


def exposition(registry: CollectorRegistry) -> list[str]:
    """The registry's samples, without the creation timestamps (they differ between metrics)."""
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines() if "_created" not in line]


def pair() -> tuple[CollectorRegistry, Counter, Histogram]:
    registry = CollectorRegistry()
    counter = Counter("polls_total", "polls", ["status"], registry=registry)
    histogram = Histogram(
        "poll_seconds", "time", ["route"], buckets=REQUEST_BUCKETS, registry=registry
    )
    return registry, counter, histogram


def test_a_flush_exposes_what_the_same_calls_made_one_by_one_expose() -> None:
    direct, direct_counter, direct_histogram = pair()
    tallied, tallied_counter, tallied_histogram = pair()
    tally = Tally()
    for number, seconds in enumerate(OBSERVED):
        status = "304" if number % 3 else "200"
        direct_counter.labels(status).inc()
        direct_histogram.labels("/spec").observe(seconds)
        tally.inc(tallied_counter.labels(status))
        tally.observe(tallied_histogram.labels("/spec"), seconds)
    direct_counter.labels("200").inc(2.5)
    tally.inc(tallied_counter.labels("200"), 2.5)

    tally.flush()
    assert exposition(tallied) == exposition(direct)
    # Every bucket was reached (each cumulative count is above the one before), so the
    # comparison covers each of them.
    cumulative = [
        float(line.rsplit(" ", 1)[1])
        for line in exposition(direct)
        if line.startswith("poll_seconds_bucket")
    ]
    assert len(cumulative) == len(REQUEST_BUCKETS) + 1
    assert all(low < high for low, high in zip([0.0, *cumulative], cumulative, strict=False))


def test_nothing_shows_before_a_flush_and_a_flush_adds_only_what_is_new() -> None:
    registry, counter, histogram = pair()
    tally = Tally()
    child, timing = counter.labels("200"), histogram.labels("/spec")
    for _ in range(3):
        tally.inc(child)
        tally.observe(timing, 0.002)
    assert registry.get_sample_value("polls_total", {"status": "200"}) == 0
    tally.flush()
    assert registry.get_sample_value("polls_total", {"status": "200"}) == 3
    assert registry.get_sample_value("poll_seconds_count", {"route": "/spec"}) == 3
    tally.flush()  # nothing pending: nothing added twice
    tally.inc(child)
    tally.flush()
    assert registry.get_sample_value("polls_total", {"status": "200"}) == 4
    assert registry.get_sample_value("poll_seconds_sum", {"route": "/spec"}) == 3 * 0.002


def test_counts_from_many_threads_flushed_meanwhile_are_exact() -> None:
    registry, counter, histogram = pair()
    tally = Tally()
    child, timing = counter.labels("200"), histogram.labels("/spec")
    threads, each = 8, 5_000
    counting = threading.Barrier(threads + 1)
    done = threading.Event()

    def count() -> None:
        counting.wait()
        for _ in range(each):
            tally.inc(child)
            tally.observe(timing, 0.001)

    def flush_meanwhile() -> None:
        counting.wait()
        while not done.is_set():
            tally.flush()

    workers = [threading.Thread(target=count) for _ in range(threads)]
    flusher = threading.Thread(target=flush_meanwhile)
    for thread in (*workers, flusher):
        thread.start()
    for thread in workers:
        thread.join()
    done.set()
    flusher.join()
    tally.flush()
    assert registry.get_sample_value("polls_total", {"status": "200"}) == threads * each
    assert registry.get_sample_value("poll_seconds_count", {"route": "/spec"}) == threads * each


def test_a_forked_child_starts_with_nothing_pending() -> None:
    from deployd.metrics.tally import TALLY

    registry, counter, _ = pair()
    child = counter.labels("200")
    TALLY.inc(child, 5)
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: flush what it inherited, report what that added
        try:
            TALLY.flush()
            os.write(
                writing, str(registry.get_sample_value("polls_total", {"status": "200"})).encode()
            )
        finally:
            os._exit(0)
    os.close(writing)
    reported = os.read(reading, 100).decode()
    os.waitpid(pid, 0)
    os.close(reading)
    assert reported == "0.0"
    TALLY.flush()  # the parent's pending counts are still the parent's
    assert registry.get_sample_value("polls_total", {"status": "200"}) == 5
