"""What carrying the learning rate in the optimizer state costs an epoch, against compiling it in.

    python -m bench.hyperparams

Under a constant schedule the engine carries a run's learning rate and float hyperparameters in
the optimizer state (``optax.inject_hyperparams``), so that one compiled epoch serves every
learning rate a sweep or tuning study tries. The price could be a step's reading of them, largest
where a step is smallest. So, on the full Fashion-MNIST with the seed MLP: a mini-batch (64) Adam
epoch and stochastic (batch 1) epochs with plain SGD and with Adam, each trained with its
hyperparameters in the state and compiled in, the two taking turns in this process; the median
seconds of an epoch (each run's first epoch left out) and their ratio.
"""

from __future__ import annotations

import os
import statistics
import sys
from datetime import UTC, datetime
from typing import Any

CASES: tuple[tuple[str, dict[str, Any], int, int], ...] = (
    ("mini-batch 64, Adam", dict(batch_size=64, optimizer="adam", lr=1e-3), 3, 4),
    ("stochastic, plain SGD", dict(batch_size=1, optimizer="sgd", lr=1e-2), 3, 4),
    ("stochastic, Adam", dict(batch_size=1, optimizer="adam", lr=1e-4), 2, 3),
)


def _epoch_seconds(config: Any, data: Any, *, in_state: bool) -> list[float]:
    from costhill.engine import loop

    arms = loop._Arms([config], vectorize=False, injected=in_state)
    run = loop._train(arms, data, None, None, None, None)[0]
    return [record.seconds for record in run.epochs[1:]]


def main(argv: list[str]) -> None:
    from costhill import RunConfig
    from costhill.data import load

    from .hill import _cpu

    rounds = int(argv[0]) if argv else 0
    data = load("fashion-mnist")
    print(f"{datetime.now(UTC):%Y-%m-%d}, {_cpu()}, {os.cpu_count()} cores")
    print("| epoch | compiled in | in the optimizer state | ratio |")
    print("|---|---:|---:|---:|")
    for label, settings, epochs, default_rounds in CASES:
        config = RunConfig(dataset="fashion-mnist", epochs=epochs, **settings)
        seconds: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(rounds or default_rounds):
            for in_state in (False, True):
                seconds[in_state] += _epoch_seconds(config, data, in_state=in_state)
        compiled, carried = (statistics.median(seconds[k]) for k in (False, True))
        print(f"| {label} | {compiled:.3f} s | {carried:.3f} s | {carried / compiled:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
