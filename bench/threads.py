"""XLA's CPU thread count against epoch time: the measurement behind
``costhill.engine.cpu_tuning.preferred_xla_threads``.

    python -m bench.threads            # about 7 minutes on 2 cores
    python -m bench.threads --quick    # one round

Each workload (the seed MLP on the full Fashion-MNIST unless stated) trains in fresh processes
(``bench.turn``, timed on a run's second epoch) with ``PJRT_NPROC=1`` and with XLA's default of one
thread a core, the two taking turns, and prints the medians as a Markdown table beside the thread
count ``preferred_xla_threads`` chooses for the config.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

from .peers import costhill_turn

WORKLOADS: list[tuple[str, dict]] = [
    ("plain SGD, batch 1", dict(optimizer="sgd", lr=0.01, batch_size=1)),
    ("plain SGD, batch 4", dict(optimizer="sgd", lr=0.01, batch_size=4)),
    ("plain SGD, batch 16", dict(optimizer="sgd", lr=0.01, batch_size=16)),
    ("plain SGD, batch 64", dict(optimizer="sgd", lr=0.01, batch_size=64)),
    ("momentum 0.9, batch 1", dict(optimizer="momentum", lr=0.01, batch_size=1)),
    ("Adam, batch 1", dict(optimizer="adam", lr=1e-4, batch_size=1)),
    ("Adam, batch 64", dict(optimizer="adam", lr=1e-3, batch_size=64)),
    (
        "plain SGD, batch 1, MLP 784-1000-500-10 (5 MB)",
        dict(optimizer="sgd", lr=0.01, batch_size=1, hidden=(1000, 500)),
    ),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.threads", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one round instead of three")
    args = parser.parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from costhill import RunConfig
    from costhill.engine.cpu_tuning import default_xla_threads, preferred_xla_threads

    base = {k: v for k, v in os.environ.items() if k not in ("PJRT_NPROC", "NPROC")}
    cores = default_xla_threads()
    rounds = 1 if args.quick else 3
    print(
        f"| workload | epoch s, 1 thread | epoch s, {cores} threads (XLA's default) "
        "| default ÷ 1 thread | costhill chooses |"
    )
    print("|---|---|---|---|---|")
    cache = tempfile.TemporaryDirectory(prefix="costhill-bench-xla-")  # one per thread count
    for name, config in WORKLOADS:
        timers = {
            threads: costhill_turn(
                env={**base, "PJRT_NPROC": str(threads)}, compile_cache=cache.name, **config
            )
            for threads in (1, cores)
        }
        seconds: dict[int, list[float]] = {threads: [] for threads in timers}
        for _ in range(rounds):
            for threads, timer in timers.items():
                seconds[threads].append(timer())
        one, default = (statistics.median(seconds[t]) for t in (1, cores))
        chosen = preferred_xla_threads([RunConfig(**config)]) or f"default ({cores})"
        row = f"| {name} | {one:.3f} | {default:.3f} | {default / one:.2f}x | {chosen} |"
        print(row, flush=True)
    cache.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
