"""A sweep of 2,000 short runs (logistic regression, one epoch, the shipped sample): its wall
time, the store's size per run, and how long `costhill runs` and `costhill compare` take over it,
each the median of 5 fresh processes.

    python -m bench.load
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = 2_000
LOAD_PLAN = f"""
name = "load"
dataset = "fashion-mnist-sample"
model = "logreg"
optimizer = "sgd"
lr = 0.1
batch_size = 100
epochs = 1
seeds = {RUNS}
"""


def _seconds(*args: str) -> float:
    times = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "costhill", *args], check=True, stdout=subprocess.DEVNULL
        )
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        plan, store = Path(folder) / "load.toml", Path(folder) / "load.db"
        plan.write_text(LOAD_PLAN)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "costhill", "sweep", str(plan), "--store", str(store)],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "COSTHILL_COMPILATION_CACHE": "off"},
        )
        sweep = time.perf_counter() - started
        size = sum(p.stat().st_size for p in Path(folder).glob("load.db*"))
        listing = _seconds("runs", "--store", str(store))
        listing_json = _seconds("runs", "--json", "--store", str(store))
        comparing = _seconds("compare", "--sweep", "load", "--store", str(store))
        help_only = _seconds("--help")
    print("| runs | sweep | store per run | costhill runs | runs --json | compare | --help |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {RUNS:,} | {sweep:.0f} s | {size / RUNS / 1e3:.0f} KB | {listing:.2f} s | "
        f"{listing_json:.2f} s | {comparing:.2f} s | {help_only:.2f} s |"
    )


if __name__ == "__main__":
    main()
