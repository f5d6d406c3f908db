"""The system console in a real headless Chromium, against a real `deployd agent --console`
process following the live server: sign in, see the status, edit the user values, see the
merged preview and the diff, save, and see the file on disk and the applied spec change."""

from __future__ import annotations

import pytest
import yaml
from selenium.webdriver.common.by import By

from tests.support.agent_console import agent_with_console
from tests.support.browser import browser, fill, heading, press, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def agent(tmp_path, live):
    with agent_with_console(
        tmp_path / "site", server=live.url, license=live.license, trust_key=live.signing_key
    ) as running:
        yield running


def applied_values(agent) -> dict:
    return yaml.safe_load(agent.out.read_text())["values"] if agent.out.exists() else {}


def text(driver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def shows(driver, title: str) -> None:
    """Wait until the page (after a click that navigates) is the one titled `title`."""
    wait_for(lambda: heading(driver) == title, what=f"the {title!r} page")


def test_sign_in_edit_the_user_values_preview_and_save(agent):
    with browser() as driver:
        driver.get(agent.url + "/")
        assert heading(driver) == "Sign in"
        fill(driver, "Console password", "not it")
        press(driver, "Sign in")
        wait_for(lambda: "That password is not right." in driver.page_source, what="the refusal")
        fill(driver, "Console password", agent.password)
        press(driver, "Sign in")
        shows(driver, "Status")
        assert text(driver, "channel") == "stable"

        def running() -> str | None:
            driver.refresh()
            shown = text(driver, "running")
            return None if shown.startswith("none") else shown

        assert wait_for(running, what="the first apply shown").split()[0]

        driver.find_element(By.LINK_TEXT, "Values").click()
        shows(driver, "Values")
        fill(driver, "User input values (YAML)", "site:\n  replicas: 5\n")
        press(driver, "Preview the merge")
        wait_for(lambda: "not saved" in text(driver, "merged-h"), what="the preview")
        assert "replicas: 5" in text(driver, "merged")
        assert "+    replicas: 5" in text(driver, "diff")
        assert not agent.user_values.exists()
        assert "site" not in applied_values(agent)

        press(driver, "Save and apply")
        wait_for(lambda: "Saved to" in driver.page_source, what="the saved notice")
        assert yaml.safe_load(agent.user_values.read_text()) == {"site": {"replicas": 5}}
        wait_for(
            lambda: applied_values(agent).get("site") == {"replicas": 5},
            what="the agent to apply the saved values",
        )

        driver.find_element(By.LINK_TEXT, "Releases").click()
        shows(driver, "Releases")
        rows = driver.find_elements(By.CSS_SELECTOR, "#releases tbody tr")
        assert len(rows) == 3
        driver.find_element(By.CSS_SELECTOR, "button[aria-label='Pin release 1.0.0']").click()
        wait_for(lambda: text(driver, "pinned") == "1.0.0", what="the pin shown")
        assert yaml.safe_load(agent.user_values.read_text())["_releaseId"] == "1.0.0"

        press(driver, "Sign out")
        shows(driver, "Sign in")
        driver.get(agent.url + "/values")
        shows(driver, "Sign in")
