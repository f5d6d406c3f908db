"""End to end in a real browser: headless Chromium (Selenium) against gunicorn on a real Redis.
A release engineer signs in with a publisher token, sees the adoption chart of a seeded fleet
with one bar per hourly point, and halts a release, which the JSON API then reports halted."""

from __future__ import annotations

import time

import pytest
import requests
from selenium.webdriver.common.by import By

from deployd.fleet.model import CheckIn
from deployd.fleet.service import FEED_CAP
from tests.support.browser import browser, fill, heading, press, wait_for
from tests.support.gunicorn import GunicornServer, redis_setup
from tests.support.publisher_auth import add_publisher, bearer

pytestmark = pytest.mark.e2e

# Hourly adoption points seeded: the six hours before this one. This hour's point is the
# server's: each hour is written once, and a worker's first round may write it before the test
# seeds (it then holds no instance of stable, and the chart showed 5 bars in a loaded CI run).
HOURS = 6


@pytest.fixture
def served(tmp_path, real_redis, redis_server):
    setup = redis_setup(tmp_path, redis_server.url)
    env = {**setup.env, "DEPLOYD_REFRESH_INTERVAL": "0.2", "DEPLOYD_RATE_LIMIT": "0"}
    server = GunicornServer(env, workers=2)
    server.start(tmp_path)
    try:
        yield server, setup.store
    finally:
        server.stop()


def seed_fleet(store) -> None:
    """Six instances on stable (four on 1.2.0, two on 1.1.0) and HOURS hourly points."""
    now = time.time()
    store.record_checkins(
        [
            CheckIn(f"acme:i{n}", "acme", f"i{n}", "stable", "1.2.0" if n < 4 else "1.1.0", now)
            for n in range(6)
        ],
        feed_cap=FEED_CAP,
    )
    hour = int(now // 3600)
    for back in range(HOURS, 0, -1):
        store.snapshot_adoption(hour - back, keep_hours=8 * 24)


def adoption_points(server: GunicornServer, token: str) -> int:
    answer = requests.get(
        server.url + "/api/v1/channels/stable/adoption", headers=bearer(token), timeout=10
    )
    return len(answer.json()["points"])


def halted(server: GunicornServer, token: str, version: str) -> bool:
    answer = requests.get(
        server.url + "/api/v1/channels/stable/rollout", headers=bearer(token), timeout=10
    )
    return next(r["halted"] for r in answer.json()["releases"] if r["release"] == version)


def test_sign_in_see_the_adoption_chart_and_halt_a_release(served):
    server, store = served
    token = add_publisher(store, "alice")
    seed_fleet(store)
    with browser() as driver:
        driver.get(server.url + "/console/")
        wait_for(lambda: heading(driver) == "Sign in", what="the sign-in page")
        fill(driver, "Publisher token", token)
        press(driver, "Sign in")
        wait_for(lambda: heading(driver) == "Channels", what="the channels page")
        driver.find_element(By.LINK_TEXT, "stable").click()
        wait_for(lambda: heading(driver) == "Channel stable", what="the channel page")

        # One bar per hourly point (the API's count, read before and after the page, so a new
        # hour starting meanwhile cannot make the numbers disagree).
        def bars_match_points() -> bool:
            before = adoption_points(server, token)
            driver.refresh()
            bars = driver.find_elements(By.CSS_SELECTOR, "svg.chart g.bar")
            return before == len(bars) == adoption_points(server, token)

        wait_for(bars_match_points, what="the chart's bars to match the adoption points")
        bars = driver.find_elements(By.CSS_SELECTOR, "svg.chart g.bar")
        assert len(bars) >= HOURS
        assert driver.find_element(By.CSS_SELECTOR, "svg.chart").size["width"] > 0
        # The newest bar stacks both releases: 4 on 1.2.0, 2 on 1.1.0.
        titles = [
            t.get_attribute("textContent") for t in bars[-1].find_elements(By.TAG_NAME, "title")
        ]
        assert any("1.2.0 4 instances" in t for t in titles)
        assert any("1.1.0 2 instances" in t for t in titles)

        assert not halted(server, token, "1.2.0")
        press(driver, "Halt 1.2.0")
        wait_for(lambda: heading(driver) == "Confirm", what="the confirmation page")
        assert not halted(server, token, "1.2.0")  # asking changed nothing
        fill(driver, "Reason (kept in the history)", "failing installs")
        press(driver, "Yes, halt")
        wait_for(lambda: "Release 1.2.0 halted." in driver.page_source, what="the halt")
    wait_for(lambda: halted(server, token, "1.2.0"), what="the API to report 1.2.0 halted")
