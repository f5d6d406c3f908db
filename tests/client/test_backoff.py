"""Poll timing: full-jitter exponential backoff with a ceiling, jittered interval, Retry-After."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest

from deployd.client.backoff import Backoff, jittered, parse_retry_after


def test_backoff_windows_double_up_to_the_ceiling():
    rng = random.Random(1)
    backoff = Backoff(1.0, 8.0, rng)
    windows = [1, 2, 4, 8, 8, 8]
    for window in windows:
        samples = []
        for _ in range(200):
            saved = backoff.failures
            samples.append(backoff.next_delay())
            backoff.failures = saved
        backoff.failures += 1
        assert all(0 <= s <= window for s in samples)
        # Full jitter: the whole window is used, not just its top.
        assert min(samples) < window * 0.1 and max(samples) > window * 0.9


def test_backoff_survives_a_very_long_outage():
    backoff = Backoff(1.0, 300.0, random.Random(2))
    backoff.failures = 10_000
    assert 0 <= backoff.next_delay() <= 300


def test_reset_starts_over():
    backoff = Backoff(1.0, 64.0, random.Random(3))
    for _ in range(6):
        backoff.next_delay()
    backoff.reset()
    assert backoff.failures == 0 and backoff.next_delay() <= 1.0


@pytest.mark.parametrize(("base", "ceiling"), [(0, 1), (-1, 1), (2, 1)])
def test_backoff_rejects_nonsense(base, ceiling):
    with pytest.raises(ValueError):
        Backoff(base, ceiling, random.Random())


def test_the_interval_is_spread_around_its_value():
    rng = random.Random(4)
    samples = [jittered(100.0, 0.1, rng) for _ in range(500)]
    assert all(90 <= s <= 110 for s in samples)
    assert max(samples) - min(samples) > 15  # a fleet does not arrive in step


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-3", None),
        ("1.5", None),
    ],
)
def test_retry_after_seconds(value, expected):
    assert parse_retry_after(value, now=1000.0) == expected


def test_retry_after_as_an_http_date():
    now = 1_800_000_000.0
    assert parse_retry_after(formatdate(now + 90, usegmt=True), now) == pytest.approx(90)
    assert parse_retry_after(formatdate(now - 90, usegmt=True), now) == 0.0
