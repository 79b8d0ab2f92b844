"""``costhill report`` over 50 and over 1,000 stored runs: the time to write it, its size, and the
time headless Chromium takes to open it and draw every figure.

    python -m bench.report_scale

Each store holds copies (new seeds) of one real seed-MLP run of 3 epochs on the shipped sample,
in 10 arms (10 learning rates written into the copies' configs), so that past 30 runs the curves
are aggregated per arm. The hill is left out (no run here has snapshots).
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Any

SIZES = (50, 1000)


def _store(path: Path, runs: int) -> None:
    from costhill import RunConfig, train
    from costhill.store import Store

    run = train(RunConfig(dataset="fashion-mnist-sample", epochs=3, batch_size=100))
    with Store(path) as store:
        for i in range(runs):
            copied = copy.copy(run)
            copied.config = run.config.replace(seed=i // 10, lr=1e-3 * (1 + i % 10))
            copied.run_id = None
            store.save(copied)


def _open_seconds(page: Path) -> float | None:
    from selenium.webdriver.support.ui import WebDriverWait

    from bench.browser import headless_chromium, installed

    if not installed():
        return None
    browser = headless_chromium()
    try:
        started = time.perf_counter()
        browser.get(page.resolve().as_uri())
        WebDriverWait(browser, 300).until(
            lambda b: (
                b.execute_script("return document.querySelectorAll('.js-plotly-plot').length") >= 3
            )
        )
        return time.perf_counter() - started
    finally:
        browser.quit()


def main() -> None:
    from costhill.results.report import write_report
    from costhill.store import Store

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        for size in SIZES:
            path = Path(folder) / f"runs{size}.db"
            _store(path, size)
            with Store(path, read_only=True) as store:
                summary = write_report(store, Path(folder) / f"report{size}.html", with_hill=False)
            opened = _open_seconds(summary.path)
            rows.append(
                {
                    "runs": size,
                    "write_seconds": summary.seconds,
                    "megabytes": summary.bytes / 1e6,
                    "open_seconds": opened,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print()
    print("| runs | write | size | Chromium opens and draws it |")
    print("|---|---|---|---|")
    for r in rows:
        shown = "—" if r["open_seconds"] is None else f"{r['open_seconds']:.1f} s"
        print(f"| {r['runs']:,} | {r['write_seconds']:.1f} s | {r['megabytes']:.1f} MB | {shown} |")


if __name__ == "__main__":
    main()
