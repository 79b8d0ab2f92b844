"""Tuning sweeps, measured.

1. Overhead: a TPE sweep of one-epoch logistic regressions on the shipped sample (the cheapest
   runs there are, so the worst case), with every call into Optuna (opening the study, ask,
   suggest, report, should_prune, tell, its journal writes) timed in the same run as the
   sweep's wall time.
2. The optimizers question on the full data: the grid plan (`optimizers`) against its tuned
   twin (`optimizers-tuned`, TPE + ASHA), read from their stores: for each optimizer the best
   mean best-validation accuracy of an arm that ran its course, and the epochs of training each
   plan spent (every run's epochs, pruned ones included).

3. Judging where the runs train: the tuned plan on the shipped sample, its trials pruned in this
   process (each batch of four trained as one cohort and judged together at a rung) and with
   two worker processes (each trial a task, judged as it reaches a rung, against the trials that
   reached it before: asynchronous successive halving), in one command: the epochs each spent,
   the trials pruned, its wall time, and each optimizer's best.

    python -m bench.tuning overhead     # twice: from an empty compilation cache, then a full one
    python -m bench.tuning overhead 5   # the cached pass five times: the median pass
    costhill sweep optimizers --store grid.db && costhill sweep optimizers-tuned --store tpe.db
    python -m bench.tuning compare grid.db tpe.db
    python -m bench.tuning asking-ahead 5  # the next trial asked in a thread: hidden or not
    python -m bench.tuning judging      # in this process, then with --workers 2
    python -m bench.tuning seeds grid.db 5  # the tuned twin again with sampler seeds 0 to 4
    python -m bench.tuning seeds grid.db 5 bench/twin-rung2.toml  # the twin judged at epoch 2
    python -m bench.tuning seeds grid.db 5 --metric=val_accuracy  # its rung on val accuracy

4. Where the draws land: the tuned twin on the full data once per sampler seed (``[search]
   seed``, which places the Latin hypercube's draws), each into a store of its own, against the
   grid's store: per optimizer, each seed's difference from the grid's best and how many seeds
   come within 0.3 points of it, and each seed's share of the grid's epochs.

5. What a rung should judge on, read from the grid's store alone (nothing trains): for every
   way of drawing ``trials`` of an optimizer's grid rates, which one a rung at ``epoch`` keeps
   when it judges on the seeds' mean validation accuracy, validation cost (as the pruner takes
   it: ``tuning.judged_value``) or training cost over the epoch, and how often that one's mean
   best validation accuracy (all five epochs) is within 0.3 points of the grid's best.

    python -m bench.tuning rungs grid.db       # a rung at epoch 1, 4 trials; or: grid.db 2 3
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OVERHEAD_PLAN = """
name = "overhead"
dataset = "fashion-mnist-sample"
model = "logreg"
optimizer = "sgd"
batch_size = 100
epochs = 1
seeds = [0]
search = "tpe"
trials = {trials}

[axes]
lr = {{log = [1e-3, 1e0]}}
"""


class _Timer:
    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    def wrap(self, owner: Any, name: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += 1

        setattr(owner, name, timed)


def overhead(trials: int = 60) -> dict[str, float]:
    import optuna

    from costhill.store import Store
    from costhill.sweeps import parse_plan, run_plan, tuning
    from costhill.sweeps.journal import SweepJournal

    timer = _Timer()
    for owner, names in (
        (optuna.study.Study, ("ask", "tell", "get_trials")),
        (optuna.trial.Trial, ("suggest_float", "suggest_categorical", "report", "should_prune")),
        (optuna.trial.Trial, ("set_user_attr",)),
        (tuning, ("open_journal", "open_study")),
        (SweepJournal, ("close",)),
    ):
        for name in names:
            timer.wrap(owner, name)
    sampler = _Timer()  # TPE's own work, a part of the calls above (inside suggest_float)
    for name in ("infer_relative_search_space", "sample_relative", "sample_independent"):
        sampler.wrap(optuna.samplers.TPESampler, name)
    plan = parse_plan(OVERHEAD_PLAN.format(trials=trials), source="overhead.toml")
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "runs.db") as store:
        started = time.perf_counter()
        report = run_plan(plan, store)
        wall = time.perf_counter() - started
    return {
        "trials": trials,
        "runs": report.trained,
        "wall_seconds": wall,
        "optuna_seconds": timer.seconds,
        "optuna_calls": timer.calls,
        "sampler_seconds": sampler.seconds,
        "share": timer.seconds / wall,
    }


def _run_study_asking_ahead(study: Any, sweep: Any, batch: int) -> None:
    """``tuning._run_study`` one trial at a time, with trial k+1 asked (its ``ask`` and the
    sampler's draw in ``suggest``) in a second thread while trial k trains. Trial k is told only
    once that ask is done, so every ask sees the history it would in the loop as it is, but
    one tell behind it. Not kept in costhill: measured by ``asking_ahead`` below."""
    from concurrent.futures import Future, ThreadPoolExecutor

    from costhill.sweeps import tuning

    def ask() -> Any:
        trial = study.ask()
        tuning.suggest(trial, sweep.search)  # drawn here; the trial's own suggest reads it back
        return trial

    with ThreadPoolExecutor(1) as pool:
        coming: Future[Any] | None = pool.submit(ask)
        while coming is not None:
            trial = coming.result()
            coming = pool.submit(ask) if tuning._asked(study) < sweep.search.trials else None
            before = len(sweep.report.run_ids)
            tuning._train_trials(sweep, [trial])
            if coming is not None:
                coming.result()
            tuning._tell(study, sweep, trial, set(sweep.report.run_ids[before:]))


def asking_ahead(turns: int = 3) -> None:
    """Whether Optuna's work hides behind the training when the next trial is asked in a thread:
    the cached pass of ``overhead`` with the loop as it is and with ``_run_study_asking_ahead``,
    taking turns, in one process; median wall times and their ratio."""
    from costhill.sweeps import tuning

    os.environ["COSTHILL_COMPILATION_CACHE"] = tempfile.mkdtemp(prefix="costhill-xla-")
    overhead()  # every compilation made before either is timed
    as_is, original = tuning._run_study, tuning._run_study
    passes: dict[str, list[dict[str, float]]] = {"as it is": [], "asking ahead": []}
    for _ in range(turns):
        for label, loop in (("as it is", as_is), ("asking ahead", _run_study_asking_ahead)):
            tuning._run_study = loop
            try:
                passes[label].append(overhead())
            finally:
                tuning._run_study = original
    median = {
        label: sorted(runs, key=lambda r: r["wall_seconds"])[len(runs) // 2]
        for label, runs in passes.items()
    }
    for label, run in median.items():
        print(
            f"{label}: median of {turns} cached passes {run['wall_seconds']:.2f} s, of it in "
            f"Optuna's calls {run['optuna_seconds']:.2f} s"
        )
    ratio = median["asking ahead"]["wall_seconds"] / median["as it is"]["wall_seconds"]
    print(f"asking ahead / as it is: {ratio:.3f} of the wall time")


def best_per_optimizer(store_path: str, sweep: str) -> tuple[dict[str, float], int, int]:
    """Per optimizer, the best arm's mean best validation accuracy (finished arms only); the
    epochs of training all the sweep's runs spent; the number of runs."""
    from costhill.results.compare import compare
    from costhill.store import Store

    with Store(store_path, read_only=True) as store:
        result = compare(store, sweep)
        every = store.sweep_runs(sweep, statuses=("finished", "diverged", "pruned"))
        epochs = sum(int(r["epochs"] or 0) for r in every)
    best = {c.group: c.best_val.mean or 0.0 for c in result.choices}
    return best, epochs, len(every)


def compare_plans(grid_store: str, tuned_store: str) -> None:
    grid, grid_epochs, grid_runs = best_per_optimizer(grid_store, "optimizers")
    tuned, tuned_epochs, tuned_runs = best_per_optimizer(tuned_store, "optimizers-tuned")
    print("| optimizer | grid: best mean best val acc | TPE + ASHA | difference (points) |")
    print("|---|---:|---:|---:|")
    for name in grid:
        found = tuned.get(name)
        diff = "—" if found is None else f"{100 * (found - grid[name]):+.2f}"
        shown = "— (every trial pruned)" if found is None else f"{found:.4f}"
        print(f"| {name} | {grid[name]:.4f} | {shown} | {diff} |")
    print(
        f"\nepochs of training: grid {grid_epochs:,} ({grid_runs} runs), TPE + ASHA "
        f"{tuned_epochs:,} ({tuned_runs} runs): {tuned_epochs / grid_epochs:.2f} of the grid's"
    )


def judging(workers: int = 2) -> None:
    from costhill.store import Store
    from costhill.sweeps import load_plan, run_plan

    overrides = {"dataset": "fashion-mnist-sample", "validation": 300}
    plan = load_plan("optimizers-tuned", overrides=overrides)
    found = {}
    with tempfile.TemporaryDirectory() as folder:
        for label, processes in (("in this process", 1), (f"--workers {workers}", workers)):
            path = str(Path(folder) / f"{processes}.db")
            with Store(path) as store:
                report = run_plan(plan, store, workers=processes)
            best, epochs, runs = best_per_optimizer(path, plan.name)
            found[label] = best
            print(
                f"{label}: {epochs:,} epochs of training ({runs} runs, {report.pruned} pruned) "
                f"in {report.wall_seconds:.1f} s"
            )
    labels = list(found)
    print(f"\n| optimizer | {' | '.join(labels)} |\n|---|" + "---:|" * len(labels))
    for name in found[labels[0]]:
        shown = [f"{found[label].get(name, float('nan')):.4f}" for label in labels]
        print(f"| {name} | {' | '.join(shown)} |")


def twin_overrides(seed: int, metric: str | None = None) -> dict[str, object]:
    """What the seeds bench sets in a twin plan, as ``--set`` would: its sampler's seed, and
    the metric its rungs judge on if given."""
    return {"search.seed": seed, **({"prune.metric": metric} if metric else {})}


def sampler_seeds(
    grid_store: str,
    seeds: int,
    plan_file: str | None = None,
    *,
    bar: float = 0.003,
    metric: str | None = None,
) -> None:
    from importlib.resources import files

    from costhill.store import Store
    from costhill.sweeps import parse_plan, run_plan

    grid, grid_epochs, _ = best_per_optimizer(grid_store, "optimizers")
    bundled = files("costhill").joinpath("plans/optimizers-tuned.toml")
    text = Path(plan_file).read_text() if plan_file else bundled.read_text()
    found: list[dict[str, float]] = []
    shares: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(seeds):
            overrides = twin_overrides(seed, metric)
            plan = parse_plan(text, source=f"optimizers-tuned.{seed}.toml", overrides=overrides)
            path = str(Path(folder) / f"{seed}.db")
            with Store(path) as store:
                run_plan(plan, store)
            best, epochs, _ = best_per_optimizer(path, plan.name)
            found.append(best)
            shares.append(epochs / grid_epochs)
            share = epochs / grid_epochs
            print(f"sampler seed {seed}: {epochs:,} epochs, {share:.2f} of the grid's")
    heads = " | ".join(f"seed {seed}" for seed in range(seeds))
    print(f"\n| optimizer | grid | {heads} | within {100 * bar:.1f} points |")
    print("|---|---:|" + "---:|" * seeds + "---:|")
    met_everywhere = 0
    for name, target in grid.items():
        diffs = [best.get(name, 0.0) - target for best in found]
        met = sum(d >= -bar for d in diffs)
        met_everywhere += met == seeds
        shown = " | ".join(f"{100 * d:+.2f}" for d in diffs)
        print(f"| {name} | {target:.4f} | {shown} | {met} of {seeds} |")
    print(f"| **share of the grid's epochs** | 1 | {' | '.join(f'{s:.2f}' for s in shares)} | |")
    print(f"\n{met_everywhere} of {len(grid)} optimizers within the bar at every seed")


RUNG_SIGNALS = ("val_accuracy", "val_cost", "mean_step_cost")


def rung_arms(store_path: str, sweep: str, epoch: int) -> dict[str, list[dict[str, float]]]:
    """Per optimizer, each learning rate's arm: its seeds' mean best validation accuracy
    (``best``) and, for each of ``RUNG_SIGNALS``, their mean at ``epoch`` as a pruner would
    take it (higher for better, 0 for a run that diverged or never reached it)."""
    import math
    from types import SimpleNamespace

    from costhill.store import Store
    from costhill.sweeps.tuning import judged_value

    with Store(store_path, read_only=True) as store:
        runs = store.sweep_runs(sweep, statuses=("finished", "diverged"))
        rows = store.epoch_rows([r["run_id"] for r in runs], ("epoch", *RUNG_SIGNALS))
        at_epoch = {row[0]: row[1:] for row in rows if row[1] == epoch}
    seeds: dict[tuple[str, float], list[dict[str, float]]] = {}
    for run in runs:
        _, accuracy, cost, step_cost = at_epoch.get(run["run_id"], (epoch, None, None, None))
        # judged_value reads only these two fields of an EpochRecord
        record: Any = SimpleNamespace(val_accuracy=accuracy, val_cost=cost)
        train = step_cost is not None and math.isfinite(step_cost)
        seeds.setdefault((run["optimizer"], run["lr"]), []).append(
            {
                "best": run["best_val_accuracy"] or 0.0,
                "val_accuracy": judged_value(record, "val_accuracy"),
                "val_cost": judged_value(record, "val_cost"),
                "mean_step_cost": math.exp(-step_cost) if train else 0.0,
            }
        )
    arms: dict[str, list[dict[str, float]]] = {}
    for (optimizer, lr), members in sorted(seeds.items()):
        mean = {key: sum(m[key] for m in members) / len(members) for key in members[0]}
        arms.setdefault(optimizer, []).append({"lr": lr, **mean})
    return arms


def rung_hits(
    arms: list[dict[str, float]], signal: str, trials: int, *, bar: float = 0.003
) -> tuple[int, int]:
    """Of every way of drawing ``trials`` of ``arms``, how many a rung judging on ``signal``
    ends on an arm within ``bar`` of the best of all ``arms``; and how many ways there are.

    Examples:
      >>> arms = [{"best": 0.85, "early": 0.9}, {"best": 0.88, "early": 0.8},
      ...         {"best": 0.87, "early": 0.7}]
      >>> rung_hits(arms, "early", 2)  # keeps 0.85 over either, 0.88 over 0.87
      (1, 3)
    """
    import itertools

    top = max(arm["best"] for arm in arms)
    ways = list(itertools.combinations(arms, trials))
    kept = [max(way, key=lambda arm: arm[signal]) for way in ways]
    return sum(arm["best"] >= top - bar for arm in kept), len(ways)


def rungs(grid_store: str, epoch: int = 1, trials: int = 4) -> None:
    arms = rung_arms(grid_store, "optimizers", epoch)
    print(f"a rung at epoch {epoch} keeping the best of {trials} grid rates, judged on:\n")
    print(f"| optimizer | {' | '.join(RUNG_SIGNALS)} |\n|---|" + "---:|" * len(RUNG_SIGNALS))
    totals = dict.fromkeys(RUNG_SIGNALS, 0)
    ways = 0
    for optimizer, its_arms in arms.items():
        cells = []
        for signal in RUNG_SIGNALS:
            hits, ways_here = rung_hits(its_arms, signal, trials)
            totals[signal] += hits
            cells.append(f"{hits} of {ways_here}")
        ways += ways_here
        print(f"| {optimizer} | {' | '.join(cells)} |")
    print(f"| **all** | {' | '.join(f'**{totals[s]} of {ways}**' for s in RUNG_SIGNALS)} |")


def main(argv: list[str]) -> None:
    if argv[:1] == ["overhead"]:
        # The first pass starts from an empty compilation cache, as a first tuning sweep does
        # (its trials' learning rates, carried in the optimizer state, share one compiled
        # epoch). The second, the same sweep into a new store, finds that made too.
        # A count after it repeats the cached pass and reports the one of median wall time: a
        # cached sweep takes a second or two, and one pass moves by a tenth from run to run.
        os.environ["COSTHILL_COMPILATION_CACHE"] = tempfile.mkdtemp(prefix="costhill-xla-")
        repeats = int(argv[1]) if len(argv) > 1 else 1
        cold = overhead()
        cached = sorted((overhead() for _ in range(repeats)), key=lambda r: r["wall_seconds"])
        passes = (
            ("from an empty compilation cache", cold),
            (
                "every compilation already made"
                + (f", median of {repeats}" if repeats > 1 else ""),
                cached[len(cached) // 2],
            ),
        )
        for label, result in passes:
            print(
                f"{label}: {result['trials']} trials, {result['runs']} runs, "
                f"{result['optuna_calls']} calls into Optuna: {result['optuna_seconds']:.2f} s, "
                f"{100 * result['share']:.2f}% of the sweep's {result['wall_seconds']:.2f} s; "
                f"of those, TPE's sampling {result['sampler_seconds']:.2f} s "
                f"({1000 * result['sampler_seconds'] / result['trials']:.1f} ms a trial)"
            )
        return
    if argv[:1] == ["asking-ahead"]:
        asking_ahead(int(argv[1]) if len(argv) > 1 else 3)
        return
    if argv[:1] == ["judging"]:
        judging()
        return
    metric = next((a.removeprefix("--metric=") for a in argv if a.startswith("--metric=")), None)
    argv = [a for a in argv if not a.startswith("--metric=")]
    if argv[:1] == ["seeds"] and len(argv) in (2, 3, 4):
        count = int(argv[2]) if len(argv) >= 3 else 5
        sampler_seeds(argv[1], count, *argv[3:], metric=metric)
        return
    if argv[:1] == ["rungs"] and len(argv) in (2, 3, 4):
        rungs(argv[1], *(int(a) for a in argv[2:]))
        return
    if argv[:1] == ["compare"] and len(argv) == 3:
        compare_plans(argv[1], argv[2])
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
