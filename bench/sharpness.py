"""Keskar et al. (2017) on this machine: do large batches end in sharper minima?

    python -m bench.sharpness                 # seed MLP, full Fashion-MNIST, 3 seeds each
    python -m bench.sharpness --seeds 1 --target 0.80   # a quick look

The seed MLP trained with Adam at batch 32 (lr 1e-3) and full-batch (lr 1e-2, the larger step a
large batch is usually given), 3 seeds each, each stopped at the first epoch whose validation
accuracy reaches ``--target``: the same final quality rather than the same epochs (full-batch
descent takes one step an epoch, so equal epochs would compare a trained net with an untrained
one). At each end point: the top Hessian eigenvalue (power iteration) and the trace
(Hutchinson) of the training cost on a fixed 10,000-example subset.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

ARMS: dict[str, dict[str, Any]] = {
    "batch 32": {"batch_size": 32, "lr": 1e-3},
    "full-batch": {"batch_size": "full", "lr": 1e-2},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--target", type=float, default=0.85)
    parser.add_argument("--subset", type=int, default=10_000)
    parser.add_argument("--max-epochs", type=int, default=600)
    args = parser.parse_args()

    from costhill import RunConfig, train
    from costhill.data import load
    from costhill.results.hill import measured_sharpness, subset_of
    from costhill.store import Store

    data = load("fashion-mnist")
    images, labels = subset_of(data, args.subset)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "runs.db") as store:
        for arm, settings in ARMS.items():
            for seed in range(args.seeds):
                config = RunConfig(
                    optimizer="adam",
                    epochs=args.max_epochs,
                    seed=seed,
                    target_accuracy=args.target,
                    stop_at_target=True,
                    **settings,
                )
                run = train(config, data=data)
                store.save(run)
                found = measured_sharpness(store, run, images, labels, seed=seed)
                last = run.epochs[-1]
                rows.append(
                    {
                        "arm": arm,
                        "seed": seed,
                        "epochs": len(run.epochs),
                        "steps": run.steps,
                        "val_accuracy": last.val_accuracy,
                        "train_cost": last.train_cost,
                        "top_eigenvalue": found["top_eigenvalue"],
                        "trace": found["trace"],
                        "reached": run.target is not None,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    print()
    print("| arm | seed | epochs (steps) | val acc | train cost | top eigenvalue | trace |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['arm']} | {r['seed']} | {r['epochs']} ({r['steps']:,}) | "
            f"{r['val_accuracy']:.4f} | {r['train_cost']:.4f} | {r['top_eigenvalue']:.2f} | "
            f"{r['trace']:.1f} |"
        )
    for arm in ARMS:
        values = [r["top_eigenvalue"] for r in rows if r["arm"] == arm]
        traces = [r["trace"] for r in rows if r["arm"] == arm]
        print(
            f"{arm}: top eigenvalue mean {statistics.fmean(values):.2f} "
            f"(min {min(values):.2f}, max {max(values):.2f}); trace mean "
            f"{statistics.fmean(traces):.1f}"
        )


if __name__ == "__main__":
    main()
