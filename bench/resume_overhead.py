"""What keeping a run's training state costs: each epoch's commit with and without it.

    python -m bench.resume_overhead

The seed MLP with Adam (the largest state a bundled preset keeps: parameters and two moments,
2.2 MB) trained on the full Fashion-MNIST for 5 epochs at batch 64, once keeping its state and
once not, each epoch committed to a fresh store; the table gives the median seconds of an epoch's
training and of its commit.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    from costhill import RunConfig, train
    from costhill.data import load
    from costhill.store import Store

    data = load("fashion-mnist")
    config = RunConfig(optimizer="adam", lr=1e-4, batch_size=64, epochs=5)
    train(config.replace(epochs=1), data=data)  # compile once, outside the timings
    print("| state kept | epoch (training) | commit | commit / epoch |")
    print("|---|---|---|---|")
    for keep in (False, True):
        commits: list[float] = []
        with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "r.db") as store:

            def commit(run, record, costs, store=store, commits=commits):
                started = time.perf_counter()
                store.add_epoch(run, record, costs)
                commits.append(time.perf_counter() - started)

            def begin(run, store=store):
                store.begin(run)

            run = train(config, data=data, keep_state=keep, on_start=begin, on_epoch=commit)
        epoch = statistics.median(e.seconds for e in run.epochs)
        commit_s = statistics.median(commits)
        print(
            f"| {'yes' if keep else 'no'} | {epoch:.3f} s | {1e3 * commit_s:.1f} ms | "
            f"{commit_s / epoch:.1%} |"
        )


if __name__ == "__main__":
    main()
