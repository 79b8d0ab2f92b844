"""What a sweep costs beyond its runs, and how fast `compare` reads a large store.

    python -m bench.sweeps

1. Overhead: the bundled `initializers` plan (24 runs) with `--set epochs=2`, once as a sweep into
   a fresh store (planning, data loading, store writes), and once as the same 24 configs passed to
   `costhill.train` one after the other with nothing stored, each in a fresh process (so neither
   inherits the other's compilations). Ratio = sweep time / sum of the bare runs' times.
2. Scale: 1,000 synthetic runs (10 epochs each) in a fresh store, then `compare` over them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_SWEEP = """
import sys, tempfile, time
from pathlib import Path
from costhill.sweeps import load_plan
from costhill.store import Store
from costhill.sweeps import run_plan
plan = load_plan("initializers", overrides={"epochs": 2})
with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "runs.db") as store:
    started = time.perf_counter()
    run_plan(plan, store)
    print(time.perf_counter() - started)
"""

_BARE = """
import time
from costhill import train
from costhill.data import load
from costhill.sweeps import load_plan
plan = load_plan("initializers", overrides={"epochs": 2})
data = load("fashion-mnist")
total = 0.0
for config in plan.configs:
    started = time.perf_counter()
    train(config, data=data)
    total += time.perf_counter() - started
print(total)
"""


def overhead() -> tuple[float, float]:
    """(sweep seconds, sum of bare train() seconds), each side in a fresh process so that
    neither inherits the other's compilations; the sweep's time includes loading the data."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    seconds = []
    for script in (_SWEEP, _BARE):
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
        )
        seconds.append(float(out.stdout.strip().splitlines()[-1]))
    return seconds[0], seconds[1]


def compare_scale(runs: int = 1000) -> float:
    import numpy as np

    from costhill import RunConfig
    from costhill.records import EpochRecord, Run, TargetReached
    from costhill.results.compare import compare
    from costhill.store import Store

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "runs.db") as store:
        hashes = []
        for i in range(runs):
            config = RunConfig(
                optimizer=["adam", "sgd", "lion", "nadam"][i % 4],
                lr=float(10 ** -(1 + (i // 4) % 25 / 5)),
                seed=i // 100,
                target_accuracy=0.85,
            )
            run = Run(
                config=config,
                status="finished",
                regime="mini-batch",
                batch_size=64,
                num_train=50_000,
                steps_per_epoch=782,
                versions={"costhill": "bench"},
            )
            for epoch in range(1, 11):
                val = float(min(0.95, 0.7 + 0.02 * epoch + rng.normal(0, 0.01)))
                run.epochs.append(
                    EpochRecord(
                        epoch, 782 * epoch, 0.5, 0.5, val, 0.5, val, 0.5, val - 0.01, 0.3, 0.1
                    )
                )
                run.step_costs.append(np.full(782, 0.5, np.float32))
                if run.target is None and val >= 0.85:
                    run.target = TargetReached(0.85, "validation", epoch, 782 * epoch, 0.3 * epoch)
            store.save(run)
            hashes.append(config.config_hash())
        store.add_to_sweep("scale", hashes)
        started = time.perf_counter()
        result = compare(store, "scale")
        seconds = time.perf_counter() - started
        assert len(result.rows) * 10 == runs
    return seconds


def main() -> int:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    print("sweep overhead: initializers plan, 24 runs x 2 epochs ...", flush=True)
    sweep_seconds, bare = overhead()
    print(
        f"  sweep wall {sweep_seconds:.2f}s · the same runs bare {bare:.2f}s · "
        f"ratio {sweep_seconds / bare:.3f}"
    )
    print("compare over 1,000 stored runs ...", flush=True)
    seconds = compare_scale()
    print(f"  compare answered in {seconds:.3f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
