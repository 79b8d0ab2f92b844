"""The HTML report, from the committed fixture store, opened in a real headless Chromium
(Debian's chromium and chromedriver; .ci/run installs them)."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

from costhill.results.report import write_report
from costhill.store import Store

FIXTURE = Path(__file__).parent / "data" / "runs.db"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    store_path = folder / "runs.db"
    shutil.copy(FIXTURE, store_path)
    with Store(store_path, read_only=True) as store:
        summary = write_report(store, folder / "report.html", sweep="hill")
    assert summary.runs == 5
    assert summary.sections == [
        "Runs",
        "Compare",
        "Search",
        "Cost curves",
        "Accuracy",
        "The cost hill",
        "Initializers",
        "Predictions",
    ]
    return summary.path


def _browser():
    from bench.browser import headless_chromium, installed

    if not installed():
        if os.environ.get("CI"):
            pytest.fail("CI must install chromium and chromium-driver (.ci/run does)")
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    return headless_chromium(console_log=True)


def test_the_report_is_one_file_with_no_network_references(report):
    text = report.read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']https?:", text)
    assert 'id="hill-3d"' in text and "data:image/png;base64," in text


def test_the_report_opens_in_a_browser_without_errors(report, tmp_path):
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser()
    try:
        browser.get(report.resolve().as_uri())
        WebDriverWait(browser, 60).until(
            lambda b: b.execute_script(
                "return document.querySelectorAll('#hill-3d .gl-container, #hill-3d canvas')"
                ".length > 0 || document.querySelector('#hill-3d .main-svg') !== null"
            )
        )
        hill = browser.find_element(By.ID, "hill-3d")
        assert "js-plotly-plot" in hill.get_attribute("class")
        plots = browser.execute_script("return document.querySelectorAll('.js-plotly-plot').length")
        assert plots >= 5  # curves, accuracy, hill contour, hill 3-D, confusion
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        shot = tmp_path / "report.png"
        browser.save_screenshot(str(shot))
    finally:
        browser.quit()
    image = Image.open(shot).convert("L")
    low, high = image.getextrema()
    assert isinstance(low, int) and isinstance(high, int) and high - low > 100  # not blank
    assert len(image.resize((64, 64)).getcolors(4096) or []) > 20


def test_writing_a_report_does_not_block_a_writing_store(tmp_path):
    """A writer commits while the report reads the same store (read-only, WAL)."""
    store_path = tmp_path / "runs.db"
    shutil.copy(FIXTURE, store_path)
    Store(store_path).close()  # into WAL mode, as a sweep's store is
    finished, reading = threading.Event(), threading.Event()
    commits: list[bool] = []  # each commit: whether the report was reading then
    errors: list[Exception] = []

    def write_while_reading() -> None:
        writer = sqlite3.connect(store_path, timeout=0.5)
        try:
            while not finished.is_set():
                writer.execute("INSERT OR REPLACE INTO meta VALUES ('probe', ?)", (len(commits),))
                writer.commit()  # 'database is locked' if the reader held a write lock
                commits.append(reading.is_set())
        except sqlite3.Error as err:
            errors.append(err)
        finally:
            writer.close()

    thread = threading.Thread(target=write_while_reading)
    thread.start()
    try:
        with Store(store_path, read_only=True) as store:
            reading.set()
            write_report(
                store, tmp_path / "r.html", sweep="hill", with_hill=False, with_predictions=False
            )
            reading.clear()
    finally:
        finished.set()
        thread.join()
    # How many commits fit in the report's time depends on the disk's fsync; that none failed
    # and some landed while it read does not.
    assert errors == [] and sum(commits) >= 3
