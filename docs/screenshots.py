"""Regenerate the consoles' screenshots in docs/images/ (PNG) from the real thing.

Run from the repository root with the test extra installed and Debian's chromium and
chromium-driver present::

    .venv/bin/python docs/screenshots.py

Each console has its function here: it starts the real server (and agent), seeds data, drives
headless Chromium and writes its PNGs.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from selenium.webdriver.common.by import By  # noqa: E402

from tests.support.agent_console import agent_with_console  # noqa: E402
from tests.support.browser import (  # noqa: E402
    browser,
    fill,
    heading,
    press,
    save_screenshot,
    wait_for,  # noqa: E402
)
from tests.support.live import serving  # noqa: E402
from tests.support.world import World  # noqa: E402

IMAGES = REPO / "docs" / "images"


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


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="deployd-screenshots-") as work:
        for made in system_console(Path(work)):
            print(made.relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
