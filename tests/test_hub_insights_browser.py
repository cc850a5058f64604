"""The insights page in a real headless Chromium (Debian's, through Debian's chromedriver):
log in on the console, open /insights, see the peak-times grid and the two-week interval
chart of a zone, switch zones, and the manager's weekly summary table."""

from __future__ import annotations

import threading
import time

import pytest

from tests.support.broker import free_port
from tests.support.browser import (
    By,
    Select,
    StaleElementReferenceException,
    WebDriverWait,
    headless_chromium,
)
from tests.test_hub_insights import PASSWORD, insights  # noqa: F401  (the fixture)
from tools.hub.serve.api import build_app

uvicorn = pytest.importorskip("uvicorn")


@pytest.fixture
def served(insights):  # noqa: F811
    """The insights fixture's hub app on a real loopback HTTP server (uvicorn)."""
    hub, _, stored, _, _ = insights
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(build_app(hub), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", stored
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def browser():
    with headless_chromium("1400,1000") as drv:
        yield drv


def test_peak_times_page_shows_the_grid_and_the_interval_chart(served, browser):
    url, stored = served
    # A view redraws by replacing its elements: a lookup between the two is retried.
    wait = WebDriverWait(
        browser, 60, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
    )
    browser.get(url + "/")
    browser.find_element(By.ID, "login-user").send_keys("anna")
    browser.find_element(By.ID, "login-password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    wait.until(lambda d: "anna (manager)" in d.find_element(By.ID, "who").text)
    browser.find_element(By.ID, "insights-link").click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#peak-heat rect[data-how]"))
    cells = browser.find_elements(By.CSS_SELECTOR, "#peak-heat rect[data-how]")
    assert len(cells) == 7 * 24
    assert browser.find_element(By.ID, "peak-heat").get_attribute("data-zone") == "entrance"
    values = [float(c.get_attribute("data-value")) for c in cells]
    saturday, wednesday = sum(values[5 * 24 : 6 * 24]), sum(values[2 * 24 : 3 * 24])
    assert saturday > 1.3 * wednesday
    assert browser.find_elements(By.CSS_SELECTOR, "#peak-interval polygon")  # the 80 % band
    assert len(browser.find_elements(By.CSS_SELECTOR, "#peak-days tr")) in (14, 15)
    assert stored.start[:4] in browser.find_element(By.ID, "peak-made").text
    assert browser.find_element(By.ID, "insight-error").text == ""

    Select(browser.find_element(By.ID, "peak-zone")).select_by_value("till")
    wait.until(lambda d: d.find_element(By.ID, "peak-heat").get_attribute("data-zone") == "till")
    till = [float(c.get_attribute("data-value"))
            for c in browser.find_elements(By.CSS_SELECTOR, "#peak-heat rect[data-how]")]  # fmt: skip
    assert 0 < sum(till) < 0.7 * sum(values)  # the till is 0.4x the entrance

    browser.find_element(By.CSS_SELECTOR, '#insight-tabs button[data-view="weekly"]').click()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#weekly-rows tr"))
    zones = [r.get_attribute("data-zone")
             for r in browser.find_elements(By.CSS_SELECTOR, "#weekly-rows tr")]  # fmt: skip
    assert zones == ["entrance", "till"]
    link = browser.find_element(By.ID, "weekly-csv").get_attribute("href")
    assert link.endswith("/api/insights/weekly-summary.csv")
