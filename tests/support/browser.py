"""A real browser for end-to-end tests: Selenium driving the system's headless Chromium through
the system's chromedriver (Debian's `chromium` and `chromium-driver`; `.ci/run` installs them).

`browser()` skips the test when either is missing, except in CI (the `CI` variable set), where a
missing browser is a failure, as a missing redis-server is (tests/conftest.py).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

T = TypeVar("T")

# Generous: the machine running the tests may be busy.
DEFAULT_WAIT_SECONDS = 30.0
WINDOW = (1280, 900)


def chromium_paths() -> tuple[str, str] | None:
    """The system's chromium and chromedriver, or None when either is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def require_chromium() -> tuple[str, str]:
    """The browser's paths; skip the test without them (fail in CI)."""
    found = chromium_paths()
    if found is None:
        message = (
            "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        )
        if os.environ.get("CI"):
            pytest.fail("CI: " + message)
        pytest.skip(message)
    return found


@contextmanager
def browser(*, dark: bool = False) -> Iterator[WebDriver]:
    """A headless Chromium session (closed afterwards); `dark` asks pages for their dark scheme."""
    chromium, driver_path = require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(argument)
    if dark:
        options.add_argument("--force-dark-mode")
        options.add_argument("--blink-settings=preferredColorScheme=0")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(DEFAULT_WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float = DEFAULT_WAIT_SECONDS,
    what: str = "a condition",
) -> T:
    """Poll `condition` until it returns something truthy (returned); AssertionError after
    `timeout` seconds. Exceptions from the condition count as not yet."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except Exception as e:  # noqa: BLE001 (the page may still be loading)
            last_error = e
        else:
            if result:
                return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} ({last_error!r})")


def fill(driver: WebDriver, label: str, text: str) -> None:
    """Type `text` into the field whose <label> reads `label`."""
    field_id = driver.find_element(By.XPATH, f"//label[normalize-space()='{label}']").get_attribute(
        "for"
    )
    field = driver.find_element(By.ID, str(field_id))
    field.clear()
    field.send_keys(text)


def press(driver: WebDriver, button_text: str) -> None:
    """Click the button reading `button_text`."""
    driver.find_element(By.XPATH, f"//button[normalize-space()='{button_text}']").click()


def heading(driver: WebDriver) -> str:
    """The page's <h1> text."""
    return str(driver.find_element(By.TAG_NAME, "h1").text)


def save_screenshot(driver: WebDriver, path: Path) -> Path:
    """A PNG of the whole page at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(WINDOW[0], max(WINDOW[1], int(height)))
    driver.save_screenshot(str(path))
    driver.set_window_size(*WINDOW)
    return path
