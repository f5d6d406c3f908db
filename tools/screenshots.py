"""Screenshots of the consoles for the README and docs/consoles.md, made by the real thing.

`python tools/screenshots.py` starts a redis-server and gunicorn (on loopback, in a temporary
directory), seeds channels, a week of fleet adoption and a few events, signs in with headless
Chromium (tests/support/browser.py) and writes PNGs into docs/images/. Needs redis-server,
chromium and chromium-driver. Each console has one function here; run them all, or name some:
`python tools/screenshots.py release`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


from selenium.webdriver.common.by import By  # noqa: E402

from deployd.fleet.model import CheckIn  # noqa: E402
from deployd.fleet.service import FEED_CAP  # noqa: E402
from deployd.store.redis import RedisStore  # noqa: E402
from tests.support.agent_console import agent_with_console  # noqa: E402
from tests.support.browser import (  # noqa: E402
    browser,
    fill,
    heading,
    press,
    save_screenshot,
    wait_for,
)
from tests.support.gunicorn import GunicornServer, redis_setup  # noqa: E402
from tests.support.live import serving  # noqa: E402
from tests.support.publisher_auth import add_publisher  # noqa: E402
from tests.support.redis_server import RedisServer, free_port  # noqa: E402
from tests.support.world import World  # noqa: E402

IMAGES = REPO / "docs" / "images"
FLEET = 120  # instances on stable
WEEK_HOURS = 7 * 24


def seed_adoption(store: RedisStore) -> None:
    """A week on stable: everyone on 1.1.0, then 1.2.0 rolling out over the last four days."""
    now = time.time()
    hour = int(now // 3600)
    for back in range(WEEK_HOURS - 1, -1, -1):
        at = hour - back
        progress = max(0.0, min(1.0, (WEEK_HOURS - 72 - back) / 96))
        upgraded = int(FLEET * 0.8 * progress)
        store.record_checkins(
            [
                CheckIn(
                    f"customer-{n % 40:02d}:cluster-{n}",
                    f"customer-{n % 40:02d}",
                    f"cluster-{n}",
                    "stable",
                    "1.2.0" if n < upgraded else ("1.1.0" if n < FLEET - 6 else "1.0.0"),
                    at * 3600 + 60,
                    "0.1.0",
                    "v1.30.2",
                )
                for n in range(FLEET)
            ],
            feed_cap=FEED_CAP,
        )
        store.snapshot_adoption(at, keep_hours=WEEK_HOURS + 24)


def release_console(tmp: Path) -> list[Path]:
    """The release console: channels, a channel with its adoption chart, fleet, licenses."""
    redis = RedisServer(free_port(), str(tmp))
    redis.start()
    server: GunicornServer | None = None
    try:
        setup = redis_setup(tmp, redis.url)
        token = add_publisher(setup.store, "alice")
        seed_adoption(setup.store)
        server = GunicornServer({**setup.env, "DEPLOYD_REFRESH_INTERVAL": "0.2"}, workers=1)
        server.start(tmp)
        license = setup.kit.issue(channel="stable", channels=["stable", "beta"])
        shots = []
        with browser() as driver:
            driver.get(server.url + "/console/sign-in")
            shots.append(save_screenshot(driver, IMAGES / "console-sign-in.png"))
            fill(driver, "Publisher token", token)
            press(driver, "Sign in")
            wait_for(lambda: heading(driver) == "Channels", what="the channels page")
            shots.append(save_screenshot(driver, IMAGES / "console-channels.png"))
            driver.get(server.url + "/console/channels/stable")
            shots.append(save_screenshot(driver, IMAGES / "console-channel.png"))
            driver.get(server.url + "/console/fleet?channel=stable&behind=1")
            shots.append(save_screenshot(driver, IMAGES / "console-fleet.png"))
            driver.get(server.url + "/console/licenses")
            fill(driver, "License (JWT)", license)
            press(driver, "Check")
            wait_for(lambda: "Verdict" in driver.page_source, what="the verdict")
            shots.append(save_screenshot(driver, IMAGES / "console-licenses.png"))
        return shots
    finally:
        if server is not None:
            server.stop()
        redis.stop()


def system_console(work: Path) -> list[Path]:
    """The agent's system console following the sample stable channel: status, the values
    page with a previewed change, and the channel's releases."""
    with serving(World(work / "server", rate_limit_enabled=False)) as server:
        server.publish("stable", (REPO / "channels" / "stable.yaml").read_text())
        with agent_with_console(
            work / "site",
            server=server.url,
            license=server.license,
            trust_key=server.signing_key,
            interval=5.0,
        ) as agent:
            agent.cache_dir.mkdir(parents=True, exist_ok=True)
            with browser() as driver:
                driver.get(agent.url + "/login")
                fill(driver, "Console password", agent.password)
                press(driver, "Sign in")
                wait_for(lambda: heading(driver) == "Status", what="the status page")
                wait_for(
                    lambda: (
                        driver.refresh()
                        or not driver.find_element(By.ID, "running").text.startswith("none")
                    ),
                    what="the first apply",
                )
                shots = [save_screenshot(driver, IMAGES / "system-console-status.png")]
                driver.get(agent.url + "/values")
                fill(
                    driver,
                    "User input values (YAML)",
                    "global:\n  host: https://wandb.example.com\napp:\n  replicaCount: 3\n",
                )
                press(driver, "Preview the merge")
                wait_for(lambda: driver.find_elements(By.ID, "diff"), what="the preview")
                shots.append(save_screenshot(driver, IMAGES / "system-console-values.png"))
                driver.get(agent.url + "/releases")
                wait_for(lambda: heading(driver) == "Releases", what="the releases page")
                shots.append(save_screenshot(driver, IMAGES / "system-console-releases.png"))
                return shots


CONSOLES: dict[str, Callable[[Path], list[Path]]] = {
    "release": release_console,
    "system": system_console,
}


def main(argv: list[str]) -> int:
    wanted = argv or list(CONSOLES)
    for name in wanted:
        with tempfile.TemporaryDirectory(prefix=f"deployd-screenshots-{name}-") as tmp:
            for path in CONSOLES[name](Path(tmp)):
                print(path.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
