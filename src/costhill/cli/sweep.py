"""``costhill sweep`` and ``costhill plans``: train a plan into the store; list bundled plans."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..config import COHORT_CHOICES
from .console import make_console
from .options import DATA_OPTION, SET_OPTION, STORE_OPTION, TENSORBOARD_OPTION


@click.command()
@click.argument("plan")
@STORE_OPTION
@SET_OPTION
@DATA_OPTION
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Train in this many local processes (this one alone writes the store).",
)
@click.option(
    "--ray",
    "ray_address",
    metavar="HOST:PORT",
    help="Run each config as a task on this Ray cluster (costhill[ray]); results come back "
    "here, and only this process writes the store.",
)
@click.option(
    "--cohorts",
    type=click.Choice(COHORT_CHOICES),
    default="auto",
    show_default=True,
    help="Train configs differing only in seed or init as one vmapped cohort: auto = plain SGD "
    "with batches of 16 or fewer, where it pays on a CPU.",
)
@click.option("--dry-run", is_flag=True, help="Check the plan and list its configs; train nothing.")
@TENSORBOARD_OPTION
def sweep(
    plan: str,
    store_path: str,
    set_pairs: tuple[str, ...],
    data_dir: str | None,
    workers: int,
    ray_address: str | None,
    cohorts: str,
    dry_run: bool,
    tensorboard: str | None,
) -> None:
    """Train every config of PLAN (a TOML file or a bundled plan's name) that the store lacks.

    Rerunning a stopped sweep resumes it: configs with a finished, diverged or pruned run are
    skipped.

    \b
    Example:
        costhill sweep optimizers --set epochs=2 --set dataset=fashion-mnist-sample
        costhill sweep my-plan.toml --store runs.db
        costhill sweep regimes --dry-run
        costhill sweep initializers --workers 2
        costhill sweep optimizers --ray head-node:6379
    """
    from ..specs import parse_set
    from ..store import TRAINED, Store
    from ..sweeps import check_ray_head, load_plan, run_plan

    loaded = load_plan(plan, overrides=parse_set(set_pairs))
    if dry_run:
        _print_dry_run(loaded, store_path)
        return
    if ray_address:
        check_ray_head(ray_address)  # fail before the store is even created
    console = make_console(stderr=True)
    store = Store(store_path)
    shown = _SweepProgress(console, loaded, tensorboard, returned_whole=workers > 1 or ray_address)
    try:
        with shown.progress:
            report = run_plan(
                loaded,
                store,
                data_dir=data_dir,
                workers=workers,
                ray_address=ray_address,
                cohorts=cohorts,
                on_run_start=shown.on_run_start if workers == 1 and not ray_address else None,
                on_epoch=shown.on_epoch,
                on_run_end=shown.on_run_end,
            )
    except KeyboardInterrupt:
        stored = store.sweep_runs(loaded.name, statuses=TRAINED)
        pruned = sum(row["status"] == "pruned" for row in stored)
        stopped = sum(store.stopped_run(c.config_hash()) is not None for c in loaded.configs)
        store.close()
        console.print(
            f"interrupted: {len(stored)} of {len(loaded)} runs finished and stored"
            f"{f' ({pruned} of them pruned)' if pruned else ''}, {stopped} "
            "kept part-way; run the same command to resume (part-way runs go on where they "
            "stopped)"
        )
        sys.exit(130)
    store.close()
    _print_report(loaded.name, report)


def _print_report(name: str, report: Any) -> None:
    make_console().print(
        f"sweep {name}: {report.planned} configs · {report.trained} trained · "
        f"{report.skipped} already in the store · "
        + (f"{report.elsewhere} left to another sweep running now · " if report.elsewhere else "")
        + (
            f"{_counted(report.replayed, 'trial')} told from runs the store held · "
            if report.replayed
            else ""
        )
        + f"{report.diverged} diverged · "
        + (f"{report.pruned} pruned · " if report.pruned else "")
        + f"{report.wall_seconds:.1f}s wall, {report.training_seconds:.1f}s in runs"
    )


def _print_dry_run(loaded: Any, store_path: str) -> None:
    out = make_console()
    search = loaded.search
    if search.kind == "tpe":
        from ..sweeps.tuning import describe_space, studies, study_states

        count = max(1, len(search.arms))
        out.print(
            f"plan {loaded.name}: tpe search, {count} stud{'y' if count == 1 else 'ies'} of "
            f"{_counted(search.trials, 'trial')} × {_counted(len(search.seeds), 'seed')} "
            f"({_counted(len(loaded), 'run')}), budget {loaded.budget.kind} "
            f"{loaded.budget.amount:g}"
        )
        sampler = search.sampler
        start = min(sampler["startup"], search.trials)
        start_words = {0: "no Latin hypercube start", 1: "its first trial drawn at random"}.get(
            start, f"its first {start} trials a Latin hypercube"
        )
        out.print(
            f"sampler: TPE, seed {sampler['seed']}, {start_words}, "
            f"{min(sampler['batch'], search.trials)} asked at a time"
        )
        out.print(f"pruner: {_pruner_words(search)}")
        for name, study in studies(loaded):
            asked = describe_space(study)
            out.print(f"study {name}: " + "; ".join(f"{k} {v}" for k, v in asked.items()))
        fixed = {k: v for k, v in search.settings.items() if k not in search.axes}
        out.print("every trial: " + json.dumps(fixed))  # what no study searches
        for state in study_states(loaded, store_path):  # where a sweep run before left them
            out.print(_study_words(state, search.trials, store_path))
        return
    out.print(
        f"plan {loaded.name}: {len(loaded)} configs, budget {loaded.budget.kind} "
        f"{loaded.budget.amount:g}, axes {', '.join(loaded.axes) or 'none'}"
    )
    for config in loaded.configs:
        out.print(json.dumps(config.to_dict()))


def _study_words(state: Any, trials: int, store_path: str) -> str:
    """``so far in runs.db: study t.sgd: 3 trials told (2 pruned), the plan asks for 4; 1 asked
    and not told (...); best 0.6817 at sgd.lr=0.0339414``."""
    said = (
        f"so far in {store_path}: study {state.name}: {_counted(state.told, 'trial')} told "
        f"({state.pruned} pruned), the plan asks for {trials}"
    )
    if state.untold:
        said += (
            f"; {state.untold} asked and not told (training now, or, if the sweep was killed, "
            "first when it runs again)"
        )
    if state.best is None:
        return said + "; none has run its course"
    params = " ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in state.best_params.items()
        if k != "optimizer"
    )
    return f"{said}; best {state.best:.4f} at {params or 'its only point'}"


def _counted(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _pruner_words(search: Any) -> str:
    """What stops a tpe plan's trials early, in words: ``asha from epoch 1, reduction 3, judging
    validation cost``."""
    from ..results.compare import METRIC_WORDS

    options = search.prune_options
    if search.prune == "none":
        return "none: every trial trains its whole budget"
    judging = f"judging {METRIC_WORDS[search.prune_metric]} after each epoch"
    if search.prune == "median":
        return (
            f"median from epoch {options['min_epochs']}, after {options['startup']} trials, "
            f"{judging}"
        )
    return (
        f"{search.prune} from epoch {options['min_epochs']}, one trial in "
        f"{options['reduction']} going on at each rung, {judging}"
    )


class _SweepProgress:
    """The sweep's progress bars on stderr, and its TensorBoard writers, as run_plan's hooks."""

    def __init__(
        self, console: Any, loaded: Any, tensorboard: str | None, *, returned_whole: Any
    ) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
        )
        self.overall = self.progress.add_task(f"sweep {loaded.name}", total=len(loaded), info="")
        self.current = self.progress.add_task("run", total=1, info="", visible=False)
        self.tensorboard = tensorboard
        self.returned_whole = bool(returned_whole)  # runs from workers or Ray come back whole
        self.writers: dict[int, Any] = {}
        self.arms = _BestArm(loaded.axes)

    def on_run_start(self, position: int, config: Any) -> None:
        self.progress.update(
            self.current,
            description=f"run {position + 1}",
            completed=0,
            total=config.epochs if config.max_seconds is None else None,
            visible=True,
            info=f"{_arm_label(config)} seed={config.seed}",
        )

    def on_epoch(self, run: Any, record: Any, costs: Any) -> None:
        if self.tensorboard:
            from ..results.tensorboard import TensorBoardWriter

            if run.run_id not in self.writers:
                self.writers[run.run_id] = TensorBoardWriter(self.tensorboard, run)
            self.writers[run.run_id].epoch(run, record, costs)
        val = "—" if record.val_accuracy is None else f"{record.val_accuracy:.4f}"
        self.progress.update(
            self.current,
            completed=record.epoch,
            info=f"cost {record.mean_step_cost:.4f} · val acc {val}",
        )

    def on_run_end(self, position: int, run: Any) -> None:
        self.progress.advance(self.overall)
        if run is not None and run.status in ("finished", "diverged"):  # a pruned one never wins
            self.progress.update(self.overall, info=self.arms.add(run))
        if run is None or not self.tensorboard:
            return
        if run.run_id in self.writers:
            self.writers.pop(run.run_id).close()
        elif self.returned_whole:
            from ..results.tensorboard import write_run

            write_run(run, self.tensorboard)


def _arm_label(config: Any) -> str:
    return f"{config.optimizer} lr={config.lr:g} {config.init} B={config.batch_size}"


class _BestArm:
    """The best arm (a config but for its seed) of the runs trained so far, by the mean over
    its seeds of their best validation accuracy (a diverged run's counts 0), as compare and the
    tuning sweep judge them: one lucky seed does not lead. Named by the usual settings and by
    the plan's other ``axes`` that it has, so that arms apart in a width or an ``opt.b1`` read
    apart."""

    def __init__(self, axes: tuple[str, ...] = ()) -> None:
        self.others = [a for a in axes if a not in ("optimizer", "lr", "init", "batch_size")]
        self.accuracies: dict[str, list[float]] = {}
        self.labels: dict[str, str] = {}
        self.best: str | None = None

    def add(self, run: Any) -> str:
        """Count ``run``; the progress line of the best arm now."""
        from ..config import flat_settings

        config = run.config.to_dict()
        key = json.dumps({**config, "seed": None}, sort_keys=True)
        self.accuracies.setdefault(key, []).append(run.best_validation()[0] or 0.0)
        flat = flat_settings(config)
        # An axis this arm has no setting for (another optimizer's ``opt.momentum``) is left
        # out, as compare leaves it out, rather than named as null.
        self.labels[key] = " ".join(
            [_arm_label(run.config)]
            + [f"{a}={json.dumps(flat[a])}" for a in self.others if a in flat]
        )
        if self.best is None or self._mean(key) > self._mean(self.best):
            self.best = key
        elif key == self.best:  # the best arm's mean fell with this seed: another may lead now
            self.best = max(self.accuracies, key=self._mean)
        seeds = len(self.accuracies[self.best])
        return (
            f"best arm so far: val acc {self._mean(self.best):.4f} over "
            f"{seeds} seed{'' if seeds == 1 else 's'} · {self.labels[self.best]}"
        )

    def _mean(self, key: str) -> float:
        return sum(self.accuracies[key]) / len(self.accuracies[key])


@click.command()
def plans() -> None:
    """List the bundled sweep plans and why each exists.

    \b
    Example:
        costhill plans
        costhill sweep initializers --dry-run
    """
    from importlib import resources

    from ..sweeps import bundled_plans, load_plan

    for name in bundled_plans():
        text = (resources.files("costhill") / "plans" / f"{name}.toml").read_text()
        why = " ".join(
            line.lstrip("# ").strip() for line in text.splitlines() if line.startswith("#")
        )
        click.echo(f"{name} ({len(load_plan(name))} runs): {why}")


COMMANDS = [sweep, plans]
