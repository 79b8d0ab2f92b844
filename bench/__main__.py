"""costhill beside its peers and beside the machine's own limit, as ratios measured in one run.

    python -m bench            # the full suite (about 12 minutes on 2 cores)
    python -m bench --quick    # the epochs and the full-batch step only, 3 rounds (about 2 minutes)
    python -m bench --write    # also rewrite bench/results.json and the table in BENCHMARKS.md

The work, on the real Fashion-MNIST (all 60,000 training images) with the seed MLP 784-200-100-30-10
unless stated: a mini-batch (64, Adam) epoch; a stochastic (batch 1) epoch with plain SGD and with
Adam; one full-batch step (Adam); the time to reach the article's test accuracy 0.888 with Adam lr
1e-3, batch 64, and with costhill's best of a few recipes; the CNN's mini-batch epoch (no NumPy
peer). Each runs in costhill and in each peer (PyTorch eager, Keras 3 ``fit`` on TensorFlow at its
best ``steps_per_execution``, NumPy written out by hand), one after the other in this process tree,
warm-up excluded and compile time reported apart, median of the repetitions. For the mini-batch
and stochastic epochs the repetitions take turns (costhill, PyTorch, Keras, NumPy, costhill, ...),
so that a slow spell of a shared machine falls on every peer alike; each costhill turn is a fresh
process started as ``costhill train`` starts one, whose XLA thread count suits its config
(``costhill.engine.cpu_tuning``), and the turns share one compilation cache. A
peer too slow for a whole epoch is timed over a sample of steps and extrapolated, and the output
says so. The limit is the float32 matmul peak measured in the same run (NumPy, 2048x2048), and,
tighter, the time of the step's own matrix products at their own shapes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .limits import (
    cnn_train_flops_per_example,
    matmul_readings,
    mlp_step_products,
    mlp_train_flops_per_example,
    release_openblas_overrides,
)

ROOT = Path(__file__).resolve().parents[1]
PEERS = ("costhill", "torch", "keras", "numpy")
PEER_NAMES = {
    "costhill": "costhill",
    "torch": "PyTorch eager",
    "keras": "Keras fit",
    "numpy": "NumPy",
}
TARGET = 0.888


def median(values) -> float:
    return statistics.median(list(values))


def _turns(timer) -> str:
    counts = sorted({str(t) for t in timer.threads})
    return f"costhill's turns each in a fresh process, on {'/'.join(counts)} XLA CPU thread(s)"


def _best_steps_per_execution(
    options: tuple[int, ...], seconds_of: Callable[[int], float]
) -> tuple[int, dict[int, float]]:
    """Keras's fastest ``steps_per_execution`` among ``options`` and the seconds of each; with
    one option, that option untimed."""
    if len(options) == 1:
        return options[0], {}
    timed = {spe: seconds_of(spe) for spe in options}
    return min(timed, key=timed.__getitem__), timed


def _keras_warm_up(first_call: float, timed: float) -> float:
    """How much longer Keras's first call (tracing and graph building) took than a timed call of
    the same work."""
    return max(first_call - timed, 0.0)


def _compile_seconds(costhill_timer: Any, keras_timer: Any, keras_timed: float) -> dict:
    """An interleaved item's compile seconds: the epoch compile of costhill's first turn (later
    turns load it from the run's compilation cache), and Keras's warm-up."""
    return {
        "costhill": costhill_timer.compile_seconds[0],
        "keras": _keras_warm_up(keras_timer.first_call, keras_timed),
    }


def progress_line(name: str, item: dict) -> str:
    """The line printed as an item is measured: costhill's seconds, its ratio to the limit (for
    items with a FLOP count), and each peer's seconds and ratio, '>' marking a lower bound."""
    ours = item["seconds"]["costhill"]
    head = f"{name}: costhill {ours:.3f}s"
    if math.isfinite(item["limit_s"]):
        head += f" = {ours / item['limit_s']:.2f}x the peak limit"
    parts = [head]
    for peer, seconds in item["seconds"].items():
        if peer != "costhill" and seconds is not None:
            shown, ratio = _peer_cells(seconds, ours, peer in item["lower_bounds"])
            parts.append(f"{PEER_NAMES[peer]} {shown}s ({ratio})")
    return " · ".join(parts)


def _keras_note(timed: dict[int, float], best: int) -> str:
    if not timed:
        return (
            f"Keras at steps_per_execution={best}, the fastest in full runs (--quick times only it)"
        )
    return (
        "Keras at steps_per_execution="
        + ", ".join(f"{spe}: {s:.2f}s" for spe, s in timed.items())
        + f"; the table's Keras figure is steps_per_execution={best}"
    )


class Suite:
    def __init__(self, quick: bool) -> None:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        from costhill.data import load

        self.quick = quick
        self.repeats = 3 if quick else 5
        # Rounds of the interleaved items: this shared machine has slow spells that cost a turn
        # up to ~80% (0.24 s epochs read 0.41-0.47 s), so the median needs a majority of rounds
        # outside them.
        self.rounds = 3 if quick else 7
        self.sample_steps = 5_000 if quick else 6_000
        # costhill's turns keep their compilations here, for the run's length (``costhill_turn``).
        self.compile_cache = tempfile.TemporaryDirectory(prefix="costhill-bench-xla-")
        self.data = load("fashion-mnist", validation=0, download=False)
        self.n = len(self.data.train)
        self.items: dict[str, dict] = {}
        self.readings: dict[str, Any] | None = None
        self.notes: list[str] = []

    def say(self, text: str) -> None:
        print(text, flush=True)

    # -- the limit --------------------------------------------------------------------------

    def measure_limits(self) -> None:
        """The matmul readings, at the start and again at the end of the suite (at the start only
        with --quick, and the step's products at batch 64 only).

        A machine's peak is what it can do: a reading taken while a neighbour loads this shared
        machine only understates it (one start-of-run reading here once fell from ~450 to 187
        GFLOP/s). So each product keeps its best time over both readings, which can only make
        costhill's ratio to the limit stricter.
        """
        self.say("measuring the machine's matmul limit ...")
        batches = (64,) if self.quick else (64, 1, self.n)
        shapes = [(2048, 2048, 2048)]
        for batch in batches:
            shapes += mlp_step_products(batch)
        readings = matmul_readings(shapes, repeats=self.repeats)
        if self.readings is not None:
            readings = {
                key: [min(a, b) for a, b in zip(self.readings[key], readings[key], strict=True)]
                for key in ("seconds", "as_configured")
            } | {"kernel": self.readings["kernel"]}
        self.readings = readings
        seconds = readings["seconds"]
        self.peak = 2 * 2048**3 / seconds[0]
        self.peak_as_configured = 2 * 2048**3 / readings["as_configured"][0]
        self.kernel = readings["kernel"]
        per_step = len(mlp_step_products(1))
        self.step_products = {
            batch: sum(seconds[1 + i * per_step : 1 + (i + 1) * per_step])
            for i, batch in enumerate(batches)
        }
        self.say(f"  float32 matmul peak so far: {self.peak / 1e9:.1f} GFLOP/s")

    def interleaved(self, timers: dict, repeats: int) -> dict:
        """Median seconds of each timer over ``repeats`` rounds in which every peer takes a turn,
        so that a slow spell of this shared machine falls on all of them rather than on one."""
        samples: dict[str, list[float]] = {name: [] for name in timers}
        for _ in range(repeats):
            for name, timer in timers.items():
                samples[name].append(timer())
        return {name: median(values) for name, values in samples.items()}

    def _limits(self, item: dict) -> None:
        """The item's limit times from the matmul readings so far."""
        item["limit_s"] = item["flops"] / self.peak
        products = item["products"]
        if products is not None and products[1] in self.step_products:
            steps, batch = products
            item["shapes_limit_s"] = steps * self.step_products[batch]

    def record(
        self,
        name: str,
        *,
        flops: float,
        products: tuple[int, int] | None,
        seconds: dict,
        compile_s: dict[str, float] | None = None,
        lower_bounds: list[str] | None = None,
        note: str = "",
    ) -> None:
        """``products``: (steps, batch size) of the MLP steps whose matrix products bound the
        item, or None. ``compile_s``: seconds kept out of ``seconds``: costhill's epoch compile,
        and how much longer Keras's first call took than a timed one. ``lower_bounds``: peers
        whose seconds are only a lower bound (shown with '>')."""
        item = {
            "flops": flops,
            "products": products,
            "shapes_limit_s": None,
            "seconds": seconds,
            "compile_s": compile_s or {},
            "lower_bounds": lower_bounds or [],
            "note": note,
        }
        self._limits(item)
        self.items[name] = item
        self.say(progress_line(name, item))
        if note:
            self.notes.append(f"{name}: {note}")

    # -- the work ---------------------------------------------------------------------------

    def run(self) -> dict:
        from .peers import KerasPeer, NumpyPeer, TorchPeer, costhill_epochs, costhill_turn

        self.measure_limits()
        n, r = self.n, self.repeats
        epoch_flops = mlp_train_flops_per_example() * n
        torch, keras, numpy_peer = TorchPeer(self.data), KerasPeer(self.data), NumpyPeer(self.data)
        # --quick leaves out the steps_per_execution that lost every full run (1); 32 and 938 have
        # each won some (their epochs differ by less than this machine's noise), so it times both.
        spe_options = (32, 938) if self.quick else (1, 32, 938)
        spe_one = (100,) if self.quick else (1, 100)
        sample = self.sample_steps
        cache = self.compile_cache.name

        self.say("mini-batch (64, Adam) epoch ...")
        steps = -(-n // 64)
        mini: dict[str, Any] = dict(batch_size=64, optimizer="adam", lr=1e-3)
        best_spe, keras_by_spe = _best_steps_per_execution(
            spe_options,
            lambda spe: median(keras.epoch(**mini, steps_per_execution=spe, repeats=2)),
        )
        ours = costhill_turn(compile_cache=cache, **mini)
        keras_timer = keras.fitter(**mini, steps_per_execution=best_spe)
        seconds = self.interleaved(
            {
                "costhill": ours,
                "torch": lambda: torch.steps(**mini, count=steps),
                "keras": keras_timer,
                "numpy": lambda: numpy_peer.steps(**mini, count=steps),
            },
            self.rounds,
        )
        self.record(
            "mini-batch epoch (B=64, Adam)",
            flops=epoch_flops,
            products=(steps, 64),
            seconds=seconds,
            compile_s=_compile_seconds(ours, keras_timer, seconds["keras"]),
            note=_keras_note(keras_by_spe, best_spe) + "; " + _turns(ours),
        )

        scale = n / sample
        for optimizer, lr in (("sgd", 0.01), ("adam", 1e-4)):
            self.say(f"stochastic (1, {optimizer}) epoch ...")
            one: dict[str, Any] = dict(batch_size=1, optimizer=optimizer, lr=lr)

            def keras_epoch(spe: int, one: dict[str, Any] = one) -> float:
                return keras.epoch(**one, steps_per_execution=spe, examples=sample)[0] * scale

            spe, keras_spe = _best_steps_per_execution(spe_one, keras_epoch)
            keras_timer = keras.fitter(**one, steps_per_execution=spe, examples=sample)
            ours = costhill_turn(compile_cache=cache, **one)
            seconds = self.interleaved(
                {
                    "costhill": ours,
                    "torch": lambda one=one: torch.steps(**one, count=sample) * scale,
                    "keras": lambda keras_timer=keras_timer: keras_timer() * scale,
                    "numpy": lambda one=one: numpy_peer.steps(**one, count=sample) * scale,
                },
                self.rounds,
            )
            self.record(
                f"stochastic epoch (B=1, {optimizer})",
                flops=epoch_flops,
                products=(n, 1),
                seconds=seconds,
                compile_s=_compile_seconds(ours, keras_timer, seconds["keras"] / scale),
                note=f"peers timed over {sample:,} steps and extrapolated to {n:,}; "
                + _keras_note(keras_spe, spe)
                + "; "
                + _turns(ours),
            )

        self.say("full-batch step (Adam) ...")
        steps_s, compile_s = costhill_epochs(
            self.data, epochs=r + 1, batch_size="full", optimizer="adam", lr=1e-3
        )
        keras_steps, keras_first = keras.full_batch_step(repeats=r)
        self.record(
            "full-batch step (Adam)",
            flops=epoch_flops,
            products=(1, n),
            seconds={
                "costhill": median(steps_s[1:]),
                "torch": median(torch.full_batch_step(repeats=r)),
                "keras": median(keras_steps),
                "numpy": median(numpy_peer.full_batch_step(repeats=2)),
            },
            compile_s={
                "costhill": compile_s,
                "keras": _keras_warm_up(keras_first, median(keras_steps)),
            },
        )

        self.cohort_rows: list[dict] = []
        if self.quick:
            self.notes.append(
                "--quick: the time to 0.888, the CNN's epoch and the cohorts are left to the full "
                "suite (they take about half of its time), Keras at steps_per_execution=1 too; "
                "the matmul limit is read once, at the start, and the shapes limit at batch 64 only"
            )
        else:
            self.time_to_accuracy(best_spe)
            self.cnn_epoch()
            self.cohorts()
            self.measure_limits()
        self.compile_cache.cleanup()
        for item in self.items.values():
            self._limits(item)
        return {
            "cohorts": self.cohort_rows,
            "quick": self.quick,
            "matmul_peak_gflops": self.peak / 1e9,
            "matmul_peak_as_configured_gflops": self.peak_as_configured / 1e9,
            "matmul_kernel": self.kernel,
            "items": self.items,
            "notes": self.notes,
        }

    def time_to_accuracy(self, keras_spe: int) -> None:
        from .peers import KerasPeer, TorchPeer, costhill_time_to_test_accuracy

        self.say(f"time to test accuracy {TARGET} (Adam 1e-3, batch 64) ...")
        cap = 30
        results = {
            "costhill": costhill_time_to_test_accuracy(
                self.data, TARGET, cap, optimizer="adam", lr=1e-3, batch_size=64
            ),
            "torch": TorchPeer(self.data).time_to_test_accuracy(
                TARGET, cap, batch_size=64, lr=1e-3
            ),
            "keras": KerasPeer(self.data).time_to_test_accuracy(
                TARGET, cap, batch_size=64, lr=1e-3, steps_per_execution=keras_spe
            ),
        }
        epochs = {k: v[1] for k, v in results.items()}
        if epochs["costhill"] is None:
            self.notes.append(f"costhill did not reach {TARGET} within {cap} epochs")
            return
        seconds: dict[str, float | None] = {k: v[0] for k, v in results.items()}
        seconds["numpy"] = None
        self.record(
            f"time to test accuracy {TARGET} (Adam 1e-3, B=64)",
            flops=float("nan"),
            products=None,
            seconds=seconds,
            # A peer that never reached the target took longer than all its epochs.
            lower_bounds=[k for k, e in epochs.items() if e is None],
            note="epochs needed: "
            + ", ".join(
                f"{PEER_NAMES[k]} {v if v is not None else f'more than {cap} (not reached)'}"
                for k, v in epochs.items()
            )
            + f" (cap {cap}; evaluation excluded; one seed each, and epochs to 0.888 vary with it; "
            "'>' marks a peer that did not reach it: its seconds are those of all its epochs, and "
            "Keras's include the tracing of its first epoch)",
        )
        recipes = [
            {"optimizer": "adam", "lr": 2e-3, "batch_size": 128},
            {"optimizer": "adam", "lr": 3e-3, "batch_size": 256, "schedule": "cosine"},
            {"optimizer": "nadam", "lr": 1e-3, "batch_size": 64},
        ]
        best = None
        for recipe in recipes:
            found = costhill_time_to_test_accuracy(self.data, TARGET, cap, **recipe)
            self.say(f"  recipe {recipe}: {found}")
            if found[1] is not None and (best is None or found[0] < best[1][0]):
                best = (recipe, found)
        self.best_recipe = best
        if best is not None:
            self.notes.append(
                f"costhill's best recipe for {TARGET} among {len(recipes)} tried: {best[0]} -> "
                f"{best[1][0]:.2f}s of training, {best[1][1]} epochs"
                + (" (cosine over the 30-epoch cap)" if best[0].get("schedule") == "cosine" else "")
            )

    def cnn_epoch(self) -> None:
        from costhill.data import load

        from .peers import KerasPeer, TorchPeer, costhill_epochs

        examples = 5_000 if self.quick else 10_000
        self.say(f"CNN mini-batch (64, Adam) epoch on {examples:,} images ...")
        subset = load("fashion-mnist", validation=self.n - examples, download=False)
        scale = self.n / examples
        steps = -(-examples // 64)
        mini: dict[str, Any] = {"batch_size": 64, "optimizer": "adam", "lr": 1e-3}
        torch = TorchPeer(subset, model="cnn")
        # A CNN step is ~100x an MLP step, so the per-call overhead that steps_per_execution
        # saves is small; still, Keras is timed at both values that have won the MLP's epoch.
        keras = KerasPeer(subset, model="cnn")
        spe, keras_by_spe = _best_steps_per_execution(
            (32, steps), lambda spe: min(keras.epoch(**mini, steps_per_execution=spe, repeats=1))
        )
        keras_timer = keras.fitter(**mini, steps_per_execution=spe)
        epochs_s, compile_s = costhill_epochs(subset, epochs=3, model="cnn", **mini)
        keras_s = median(keras_timer() for _ in range(2))
        self.record(
            "CNN mini-batch epoch (B=64, Adam)",
            flops=cnn_train_flops_per_example() * self.n,
            products=None,
            compile_s={
                "costhill": compile_s,
                "keras": _keras_warm_up(keras_timer.first_call, keras_s),  # type: ignore[attr-defined]
            },
            seconds={
                "costhill": median(epochs_s[1:]) * scale,
                "torch": median(torch.steps(**mini, count=steps) for _ in range(2)) * scale,
                "keras": keras_s * scale,
            },
            note=f"all timed on {examples:,} images and extrapolated to {self.n:,}; "
            + _keras_note(keras_by_spe, spe)
            + f" ({steps} is the whole epoch); no NumPy CNN",
        )

    def cohorts(self) -> None:
        from costhill import RunConfig
        from costhill.engine import train, train_cohort

        self.cohort_rows.clear()
        epochs = 2 if self.quick else 3
        for batch_size, optimizer, lr in ((64, "adam", 1e-3), (1, "sgd", 0.01), (1, "adam", 1e-4)):
            self.say(f"cohort of 8 seeds against 8 runs one by one (B={batch_size}) ...")
            base = RunConfig(
                validation=0, batch_size=batch_size, optimizer=optimizer, lr=lr, epochs=epochs
            )
            configs = [base.replace(seed=seed) for seed in range(8)]
            together = median(e.seconds for e in train_cohort(configs, data=self.data)[0].epochs)
            alone = sum(median(e.seconds for e in train(c, data=self.data).epochs) for c in configs)
            self.cohort_rows.append(
                {
                    "batch_size": batch_size,
                    "optimizer": optimizer,
                    "one_by_one_s": alone,
                    "cohort_s": together,
                }
            )
            self.say(
                f"  8 runs one by one {alone:.2f}s an epoch, as a cohort {together:.2f}s "
                f"({alone / together:.2f}x)"
            )


def machine() -> dict:
    import jax
    import keras
    import numpy
    import tensorflow
    import torch

    from costhill.engine.cpu_tuning import epoch_compiler_options

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "jax": jax.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "tensorflow": tensorflow.__version__,
        "keras": keras.__version__,
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "xla_options_adam": epoch_compiler_options("adam"),
        "xla_options_sgd": epoch_compiler_options("sgd"),
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or value != value:
        return "—"
    return f"{value:.{digits}f}"


def _options(options: dict) -> str:
    return ", ".join(f"`{k.removeprefix('xla_cpu_')}={v}`" for k, v in options.items()) or "none"


def _peer_cells(theirs: float | None, ours: float, at_least: bool) -> tuple[str, str]:
    """A peer's seconds and its ratio to costhill's, marked '>' where they are a lower bound."""
    if theirs is None:
        return "—", "—"
    mark = "> " if at_least else ""
    return f"{mark}{theirs:.3f}", f"{mark}{theirs / ours:.2f}x"


def markdown(results: dict, info: dict, command: str) -> str:
    lines = [
        f"Command: `{command}` · {info['date']} · {info['cores']} cores ({info['cpu']}) · "
        f"Python {info['python']}, NumPy {info['numpy']}, JAX {info['jax']}, PyTorch "
        f"{info['torch']} ({info['torch_threads']} threads), TensorFlow {info['tensorflow']} with "
        f"Keras {info['keras']}",
        "",
        "costhill's epochs compiled with XLA options "
        f"{_options(info['xla_options_adam'])} (plain SGD: {_options(info['xla_options_sgd'])}) "
        "— see `costhill.engine.cpu_tuning.epoch_compiler_options`.",
        "",
        "float32 matmul peak measured in the same run ("
        + (
            "a reading at its start"
            if results["quick"]
            else "best of a reading at its start and one at its end"
        )
        + f"): {results['matmul_peak_gflops']:.1f} "
        f"GFLOP/s (NumPy, 2048x2048, {results['matmul_kernel']}); with this machine's "
        "OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE left set NumPy reached "
        f"{results['matmul_peak_as_configured_gflops']:.1f} GFLOP/s. The limit uses the faster, "
        "and the NumPy peer runs with them unset. 'shapes limit' sums the best NumPy time of "
        "each of the step's 11 matrix products at its own shape, each timed into an output "
        "allocated once.",
        "",
        "| work | FLOPs | limit s | shapes limit s | costhill s | costhill / limit "
        "| PyTorch eager s | Keras fit s | NumPy s | PyTorch / costhill | Keras / costhill "
        "| NumPy / costhill |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    peers = ("torch", "keras", "numpy")
    for name, item in results["items"].items():
        ours, limit = item["seconds"]["costhill"], item["limit_s"]
        at_least = set(item.get("lower_bounds", []))
        theirs = [_peer_cells(item["seconds"].get(p), ours, p in at_least) for p in peers]
        lines.append(
            f"| {name} | {item['flops']:.2e} | {_fmt(limit)} | {_fmt(item['shapes_limit_s'])} "
            f"| {ours:.3f} | {'—' if limit != limit else f'{ours / limit:.2f}x'} "
            f"| {' | '.join(seconds for seconds, _ in theirs)} "
            f"| {' | '.join(ratio for _, ratio in theirs)} |"
        )
    compiled = {name: item.get("compile_s") or {} for name, item in results["items"].items()}
    if any(compiled.values()):
        lines += [
            "",
            "Compilation and warm-up, kept out of the seconds above: costhill's epoch compile "
            "(tracing, lowering and XLA; for the interleaved items, the first turn's, as later "
            "turns load it from the run's compilation cache), and how much longer Keras's first "
            "`fit` call took than a timed one (tracing and graph building). PyTorch eager and "
            "NumPy compile nothing.",
            "",
            "| work | costhill compile s | Keras first call, beyond a timed one s |",
            "|---|---|---|",
        ]
        lines += [
            f"| {name} | {_fmt(c.get('costhill'), 2)} | {_fmt(c.get('keras'), 2)} |"
            for name, c in compiled.items()
            if c
        ]
    lines.append("")
    lines += [f"- {note}" for note in results["notes"]]
    if not results["cohorts"]:
        return "\n".join(lines) + "\n"
    lines += [
        "",
        "Cohorts: 8 configs that differ only in seed, trained as one vmap-ed program "
        "(`costhill.engine.train_cohort`) against the same 8 trained one by one, both in the "
        "bench's process on XLA's default threads; seconds of one epoch of all 8. (`costhill "
        "train` runs batch-1 plain SGD on one thread, at about the stochastic SGD row's time "
        "above: 8 of those against the cohort is the fairer comparison for that row.)",
        "",
        "| batch | optimizer | 8 runs one by one s | cohort of 8 s | cohort speed-up |",
        "|---|---|---|---|---|",
    ]
    for row in results["cohorts"]:
        lines.append(
            f"| {row['batch_size']} | {row['optimizer']} | {row['one_by_one_s']:.3f} "
            f"| {row['cohort_s']:.3f} | {row['one_by_one_s'] / row['cohort_s']:.2f}x |"
        )
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def write_benchmarks_md(table: str, path: Path = ROOT / "BENCHMARKS.md") -> None:
    """Replace the generated block of ``path`` with ``table``, keeping every line around it."""
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{table}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the epochs and the full-batch step only, fewer rounds (about 2 minutes)",
    )
    parser.add_argument(
        "--write",
        action="store_true",
        help="rewrite bench/results.json and the table in BENCHMARKS.md",
    )
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    # Before anything loads NumPy: the NumPy peer then runs on the kernel the limit is read with.
    release_openblas_overrides()
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import keras  # noqa: F401
        import torch  # noqa: F401
    except ImportError as err:
        print(f"{err.name} is not installed: `pip install --group bench` (or `make bench`)")
        return 2
    results = Suite(args.quick).run()
    info = machine()
    results["machine"] = info
    table = markdown(results, info, "python -m bench" + (" --quick" if args.quick else ""))
    print()
    print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.write:
        (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=1))
        write_benchmarks_md(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
