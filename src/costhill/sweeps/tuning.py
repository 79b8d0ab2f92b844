"""Tuning sweeps: Optuna's TPE sampler chooses each trial, its pruners stop hopeless ones.

    search = "tpe"          # or [search] with sampler = "tpe", startup = 10, seed = 0
    trials = 30
    prune = "asha"          # or [prune] with rule = "asha", min_epochs = 1, reduction = 3

A trial is one point of the plan's space (its axes; each ``[[axes.optimizer]]`` arm with its own
hyperparameters, so the space is conditional) trained at every seed of the plan. The seeds are
judged together: after each epoch the trial reports the mean validation accuracy of its seeds,
the pruner decides on that, and the trial's value is the mean of their best validation
accuracies, so one lucky seed does not win. Test accuracy is never shown to the sampler.

Optuna is driven by ask and tell from this process alone, which also alone writes the store; the
study is kept in Optuna's journal file beside the store (``runs.db.optuna.journal``), so a killed
tuning sweep resumes with the sampler's history: the trials it had asked and not told are trained
to their end (their runs continue where they stopped) before any new one is asked.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..records import EpochRecord, Run
from ..store import Store
from .executors import AbstractExecutor, Hooks, InProcess, SweepReport
from .plans import Plan, Search

JOURNAL_SUFFIX = ".optuna.journal"


def journal_path(store: Store) -> Path:
    """Where a store's tuning studies are kept: Optuna's journal file beside it."""
    return Path(f"{store.path}{JOURNAL_SUFFIX}")


def open_study(plan: Plan, store: Store, name: str, *, index: int = 0) -> Any:
    """The study ``name`` (the plan's, or its ``index``-th optimizer's) in the store's journal,
    made if new."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep shows its own progress
    search = plan.search
    storage = JournalStorage(JournalFileBackend(str(journal_path(store))))
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        load_if_exists=True,
        direction="maximize",
        pruner=make_pruner(search, epochs=int(search.settings["epochs"])),
    )
    # A sampler's random state is not in the journal: seeded again from the plan's seed alone,
    # a resumed sweep would draw its first points again. Offset by the trials already asked, it
    # draws new ones, and the same history still gives the same draws. Offset by the study's
    # place too: with one seed, every optimizer's first draws would fall at the same place in
    # its range, and an optimum at the range's edge would be missed by all of them at once.
    asked = len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(
        seed=search.sampler["seed"] + 1_000 * index + asked,
        n_startup_trials=search.sampler["startup"],
    )
    return study


def make_pruner(search: Search, *, epochs: int) -> Any:
    """Optuna's pruner for the plan's rule, its resources counted in epochs."""
    import optuna

    options = search.prune_options
    if search.prune == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=options["min_epochs"], reduction_factor=options["reduction"]
        )
    if search.prune == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=options["min_epochs"],
            max_resource=epochs,
            reduction_factor=options["reduction"],
        )
    if search.prune == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=options["startup"], n_warmup_steps=options["min_epochs"]
        )
    return optuna.pruners.NopPruner()


def suggest(trial: Any, search: Search) -> dict[str, Any]:
    """One point of the plan's space, asked of ``trial`` (the same point again for a trial that
    already holds its parameters: a resumed one). Each optimizer's hyperparameters are named
    ``optimizer.key``, so that arms do not share them."""
    point = {key: _suggest(trial, key, values) for key, values in search.axes.items()}
    if search.arms:
        names = [arm["fixed"]["optimizer"] for arm in search.arms]
        name = trial.suggest_categorical("optimizer", names)
        arm = search.arms[names.index(name)]
        point["optimizer"] = name
        for key, values in arm.items():
            if key != "fixed":
                point[key] = _suggest(trial, f"{name}.{key.removeprefix('opt.')}", values)
    return point


def _suggest(trial: Any, name: str, values: list[Any] | dict[str, Any]) -> Any:
    if isinstance(values, list):
        if all(v is None or isinstance(v, bool | int | float | str) for v in values):
            return trial.suggest_categorical(name, values)
        # Lists (hidden widths) travel as JSON text, the kinds of choice Optuna stores.
        return json.loads(trial.suggest_categorical(name, [json.dumps(v) for v in values]))
    log = values["kind"] == "log"
    if values["int"]:
        low, high = math.ceil(values["low"]), math.floor(values["high"])
        return trial.suggest_int(name, low, high, log=log)
    value = trial.suggest_float(name, values["low"], values["high"], log=log)
    return float(f"{value:.6g}")  # as random search writes them: configs that read well


class _Judge:
    """A trial's view of its runs as they train: after every epoch that all its seeds have
    reached, their mean validation accuracy goes to the pruner; if it says stop, every run of
    the trial is marked ``pruned`` and the engine stops it at that epoch."""

    def __init__(self, trial: Any, seeds: int) -> None:
        self.trial = trial
        self.seeds = seeds
        self.runs: dict[int, Run] = {}
        self.values: dict[int, dict[int, float]] = {}
        self.reported = set(trial.storage.get_trial(trial._trial_id).intermediate_values)

    def on_epoch(self, run: Run, record: EpochRecord, costs: Any) -> None:
        self.runs[run.config.seed] = run
        accuracy = record.val_accuracy
        value = 0.0 if accuracy is None or not math.isfinite(accuracy) else accuracy
        self.values.setdefault(record.epoch, {})[run.config.seed] = value
        going = self.seeds - sum(
            r.diverged_step is not None and r.epochs[-1].epoch < record.epoch
            for r in self.runs.values()
        )
        seen = self.values[record.epoch]
        if len(seen) < going or record.epoch in self.reported:
            return
        self.reported.add(record.epoch)
        self.trial.report(sum(seen.values()) / len(seen), record.epoch)
        if self.trial.should_prune():
            for other in self.runs.values():
                if other.status == "running":
                    other.status = "pruned"


def _chain(*callbacks: Callable[..., None] | None) -> Callable[..., None]:
    def call(*args: Any) -> None:
        for callback in callbacks:
            if callback is not None:
                callback(*args)

    return call


def studies(plan: Plan) -> list[tuple[str, Search]]:
    """The plan's studies: one per ``[[axes.optimizer]]`` arm (named ``plan.optimizer``), each
    with ``trials`` trials, so that every optimizer is tuned and none starves for another, as
    ``compare`` tunes within each optimizer; or one study of the plan's axes."""
    search = plan.search
    if not search.arms:
        return [(plan.name, search)]
    return [
        (f"{plan.name}.{arm['fixed']['optimizer']}", dataclasses.replace(search, arms=(arm,)))
        for arm in search.arms
    ]


def tune(
    plan: Plan,
    store: Store,
    executor: AbstractExecutor,
    report: SweepReport,
    hooks: Hooks,
    *,
    batch: int = 1,
) -> None:
    """Ask, train and tell each study's trials until it holds ``trials`` of them.

    In this process (``InProcess``) each trial's seeds train together and are judged after
    every epoch; elsewhere (worker processes, Ray) ``batch`` trials are asked at a time, their
    runs come back whole, and nothing is pruned.
    """
    judged = isinstance(executor, InProcess)
    if plan.search.prune != "none" and not judged:
        raise ConfigError(
            f"{plan.source}: prune: {plan.search.prune} judges runs epoch by epoch as they "
            "train here; runs trained by --workers or --ray come back whole (use prune = 'none')"
        )
    for index, (name, search) in enumerate(studies(plan)):
        study = open_study(plan, store, name, index=index)
        first = index * search.trials * len(search.seeds)  # its runs' positions in the sweep
        sweep = _Sweep(plan.name, first, search, store, executor, report, hooks, judged)
        _run_study(study, sweep, batch)


@dataclass
class _Sweep:
    """Where one study's trials go: the sweep they belong to, and how they train."""

    name: str
    first: int
    search: Search
    store: Store
    executor: AbstractExecutor
    report: SweepReport
    hooks: Hooks
    judged: bool


def _run_study(study: Any, sweep: _Sweep, batch: int) -> None:
    import optuna

    running = optuna.trial.TrialState.RUNNING
    # The trials a killed sweep asked and never told come first, with their own parameters.
    waiting = [
        optuna.trial.Trial(study, frozen._trial_id)
        for frozen in study.get_trials(deepcopy=False, states=(running,))
    ]
    told = len(study.get_trials(deepcopy=False)) - len(waiting)
    sweep.report.skipped += told * len(sweep.search.seeds)  # their runs are in the store
    trials = sweep.search.trials
    while waiting or len(study.get_trials(deepcopy=False)) < trials:
        while len(waiting) < batch and len(study.get_trials(deepcopy=False)) < trials:
            waiting.append(study.ask())
        asked, waiting = waiting[:batch], waiting[batch:]
        _train_trials(sweep, asked)
        for trial in asked:
            _tell(study, sweep.store, trial)


def _train_trials(sweep: _Sweep, trials: list[Any]) -> None:
    search = sweep.search
    seeds = len(search.seeds)
    todo = []
    for trial in trials:
        configs = search.configs_for(suggest(trial, search))
        hashes = [c.config_hash() for c in configs]
        trial.set_user_attr("config_hashes", hashes)
        start = sweep.first + trial.number * seeds
        sweep.store.add_to_sweep(sweep.name, hashes, start=start)
        todo += [(start + i, c) for i, c in enumerate(configs)]
    hooks = sweep.hooks
    if sweep.judged:  # one trial: its seeds train as one cohort where the engine allows
        judge = _Judge(trials[0], seeds)
        hooks = Hooks(hooks.on_run_start, _chain(judge.on_epoch, hooks.on_epoch), hooks.on_run_end)
    sweep.executor.execute(todo, sweep.store, sweep.report, hooks)


def _tell(study: Any, store: Store, trial: Any) -> None:
    """Tell the study how ``trial`` went, from what the store holds of its runs: pruned, or the
    mean of its seeds' best validation accuracies. A trial whose runs another sweep is training
    right now is left to that sweep to tell."""
    import optuna

    hashes = trial.storage.get_trial_user_attrs(trial._trial_id)["config_hashes"]
    rows = store.latest_runs(hashes)
    if len(rows) < len(hashes):
        return
    if any(row["status"] == "pruned" for row in rows.values()):
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return
    best = [row["best_val_accuracy"] or 0.0 for row in rows.values()]
    study.tell(trial, sum(best) / len(best))
