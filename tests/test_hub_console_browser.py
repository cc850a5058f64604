"""The console in a real headless Chromium (Debian's, driven by Selenium through Debian's
chromedriver; nothing downloaded): log in, an alert arrives live, acknowledge it, the unit
goes offline."""

from __future__ import annotations

import signal
import time

import pytest

from tests.support.browser import (
    By,
    StaleElementReferenceException,
    WebDriverWait,
    headless_chromium,
)
from tests.support.hub import PASSWORD, login
from tests.test_hub_serve import store  # noqa: F401  (the fixture: unit + hub + watcher)


@pytest.fixture
def browser():
    with headless_chromium("1280,900") as drv:
        yield drv


def test_log_in_see_an_alert_arrive_acknowledge_it_see_the_unit_go_offline(store, browser):  # noqa: F811
    hub, unit, _ = store
    api, _ = login(hub.url, "anna")
    browser.get(hub.url + "/")
    # The console redraws a table by replacing its rows: a lookup between the two is retried.
    stale = (StaleElementReferenceException,)
    wait = WebDriverWait(browser, 90, poll_frequency=0.2, ignored_exceptions=stale)
    browser.find_element(By.ID, "login-user").send_keys("gus")
    browser.find_element(By.ID, "login-password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login-submit").click()
    wait.until(lambda d: "gus (guard)" in d.find_element(By.ID, "who").text)
    wait.until(lambda d: d.find_element(By.ID, "link").text == "live")
    browser.execute_script("window.__sameLoad = true")  # gone if the page reloaded
    known = {a["id"] for a in api.get("/api/alerts").json()}

    def new_card(d):
        for card in d.find_elements(By.CSS_SELECTOR, ".alert-card"):
            if int(card.get_attribute("data-alert-id")) not in known:
                return card
        return None

    card = wait.until(new_card)  # arrived through the live stream
    assert browser.execute_script("return window.__sameLoad") is True
    alert_id = int(card.get_attribute("data-alert-id"))
    assert "demo-unit" in card.text and card.get_attribute("data-state") == "open"
    card.find_element(By.CSS_SELECTOR, "button.ack").click()
    sel = f'.alert-card[data-alert-id="{alert_id}"]'
    wait.until(
        lambda d: d.find_element(By.CSS_SELECTOR, sel).get_attribute("data-state") == "acknowledged"
    )
    assert "acknowledged by gus" in browser.find_element(By.CSS_SELECTOR, sel).text
    assert not browser.find_elements(By.CSS_SELECTOR, f"{sel} button.resolve")  # a guard's view
    hist = api.get(f"/api/alerts/{alert_id}").json()["history"]
    assert [(h["action"], h["user"]) for h in hist if h["user"]] == [("acknowledged", "gus")]

    browser.find_element(By.CSS_SELECTOR, 'nav button[data-tab="units"]').click()
    row = '#unit-rows tr[data-unit="demo-unit"] .state'
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, row).text in ("online", "alert"))
    unit.send_signal(signal.SIGKILL)
    unit.wait(10)
    t0 = time.monotonic()
    WebDriverWait(browser, 20, poll_frequency=0.2, ignored_exceptions=stale).until(
        lambda d: d.find_element(By.CSS_SELECTOR, row).text == "offline"
    )  # pushed by the stream: nobody reloads the page
    assert time.monotonic() - t0 < 15
    assert browser.execute_script("return window.__sameLoad") is True
