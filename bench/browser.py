"""Debian's headless Chromium driven through its chromedriver (Selenium), started as this
workplace needs it: no sandbox (root), no GPU, and none of Chromium's background network traffic,
which this machine's closed network refuses. Used by the report's browser test and its bench."""

from __future__ import annotations

import shutil
from typing import Any

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1300,2400",
)


def installed() -> bool:
    return bool(shutil.which("chromium") and shutil.which("chromedriver"))


def headless_chromium(*, console_log: bool = False) -> Any:
    """A Selenium driver of Debian's chromium (``console_log``: keep the page's console)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in FLAGS:
        options.add_argument(flag)
    if console_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(shutil.which("chromedriver") or "chromedriver")
    return webdriver.Chrome(service=service, options=options)
