"""Debian's Chromium, headless, driven by Selenium through Debian's chromedriver (nothing
downloaded), for the console's browser tests. Importing it skips the test module when
Selenium, Chromium or chromedriver is missing."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

webdriver = pytest.importorskip("selenium.webdriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
if not (CHROMIUM and DRIVER):
    pytest.skip(
        "chromium and chromium-driver not installed (tools/setup.sh)", allow_module_level=True
    )

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

__all__ = ["By", "Select", "StaleElementReferenceException", "WebDriverWait", "headless_chromium"]


@contextmanager
def headless_chromium(window_size: str) -> Iterator[object]:
    """A headless Chromium driver with a window of ``window_size`` ("W,H"), quit on exit."""
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={window_size}"):  # fmt: skip
        opts.add_argument(arg)
    drv = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()
