"""Tuning sweeps: Optuna's TPE sampler chooses each trial, its pruners stop hopeless ones.

    search = "tpe"          # or [search] with sampler = "tpe", startup = 10, seed = 0, batch = 1
    trials = 30
    prune = "asha"          # or [prune] with rule = "asha", min_epochs = 1, reduction = 3,
                            #    metric = "val_accuracy" (or "val_cost")

A trial is one point of the plan's space (its axes; each ``[[axes.optimizer]]`` arm with its own
hyperparameters, so the space is conditional) trained at every seed of the plan. The seeds are
judged together: after each epoch the trial reports the mean validation accuracy of its seeds
(or, with ``[prune] metric = "val_cost"``, the mean of ``judged_value``'s exp(-cost)), the
pruner decides on that, and the trial's value is the mean of their best validation accuracies,
so one lucky seed does not win. Test accuracy is never shown to the sampler.
``batch`` trials are asked at a time; here their runs train as one cohort and are judged
together (``_Judge``). With ``--workers`` or ``--ray`` each trial's runs train as one cohort in a
worker, which sends the driver its reports and asks it after each epoch whether to stop
(``_train_judged``): trials are then judged as each reaches a rung, against the trials that
reached it before, as asynchronous successive halving (ASHA) is defined. A study's first
``startup`` trials are a Latin hypercube over its space (``latin_hypercube``), queued in the
study when it is made.

Optuna is driven by ask and tell from this process alone, which also alone writes the store; the
study is kept in Optuna's journal file beside the store (``runs.db.optuna.journal``, written by
``journal.SweepJournal``), so a killed tuning sweep resumes with the sampler's history: the trials
it had asked and not told are trained to their end (their runs continue where they stopped)
before any new one is asked. The store alone is enough to go on: a study whose journal was lost
is made again from the runs the store holds (``stored_points``), each trial told its epochs
from them (``_replay``), so that its pruner's rungs and its sampler's history are as they were.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..config import RunConfig
from ..data import Dataset
from ..errors import ConfigError
from ..records import EpochRecord, Run
from ..store import Store
from .executors import AbstractExecutor, Hooks, InProcess, Returning, SweepReport, Task, Todo
from .plans import Plan, Search, whole_within

if TYPE_CHECKING:
    from .journal import SweepJournal

JOURNAL_SUFFIX = ".optuna.journal"


def journal_path(store: Store) -> Path:
    """Where a store's tuning studies are kept: Optuna's journal file beside it."""
    return Path(f"{store.path}{JOURNAL_SUFFIX}")


def open_journal(store: Store) -> SweepJournal:
    """The store's journal (``journal.SweepJournal``), for ``open_study``; close it after."""
    from .journal import SweepJournal

    return SweepJournal(str(journal_path(store)))


def open_study(
    search: Search,
    journal: SweepJournal,
    name: str,
    *,
    index: int = 0,
    stored: Callable[[], list[dict[str, Any]]] = list,
) -> Any:
    """The study ``name`` of ``search`` (the plan's, or its ``index``-th optimizer's, as
    ``studies`` gives them) in ``journal``, made if new: its first trials the points the store
    already holds runs of (``stored``, as ``stored_points`` finds them: a study whose journal
    was lost), or else a Latin hypercube."""
    import optuna
    from optuna.storages import JournalStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep shows its own progress
    seed = search.sampler["seed"] + 1_000 * index
    # Held until the first points are queued: two sweeps starting together would otherwise both
    # find the study new and both queue them, and train each twice under two trials.
    with journal.exclusive():
        study = optuna.create_study(
            study_name=name,
            storage=JournalStorage(journal),
            load_if_exists=True,
            direction="maximize",
            pruner=make_pruner(search, epochs=int(search.settings["epochs"])),
        )
        asked = len(study.get_trials(deepcopy=False))
        rebuilt = stored()[: search.trials] if asked == 0 else []
        if asked == 0:
            # TPE's startup draws are independent, so a few of them often bunch in one part of
            # a range and miss another: a Latin hypercube puts one in each of as many strata.
            startup = min(search.sampler["startup"], search.trials)
            for point in rebuilt or latin_hypercube(search, startup, seed):
                # Once each: a space of few choices has fewer points than strata, and a trial of
                # a point asked before would find its runs stored and be no trial at all.
                study.enqueue_trial(point, skip_if_exists=True)
    # A sampler's random state is not in the journal: seeded again from the plan's seed alone,
    # a resumed sweep would draw its first points again. Offset by the trials already asked, it
    # draws new ones, and the same history still gives the same draws. Offset by the study's
    # place too: with one seed, every optimizer's first draws would fall at the same place in
    # its range, and an optimum at the range's edge would be missed by all of them at once.
    study.sampler = optuna.samplers.TPESampler(
        # A rebuilt study draws on as the lost one would have after as many trials.
        seed=seed + asked + len(rebuilt),
        n_startup_trials=search.sampler["startup"],
    )
    return study


def stored_points(store: Store, sweep: str, search: Search) -> list[dict[str, Any]]:
    """The points of ``search`` (one study's, as ``studies`` gives them) whose runs the store
    holds for ``sweep``, as Optuna's parameters, in the order their trials were asked: what a
    study whose journal was lost is made again from. A stored arm that no point of the space
    makes again (trained at another budget, outside a range since narrowed, of another study's
    optimizer) is left out, and its runs stay in the store."""
    from ..config import flat_settings
    from ..store import TRAINED

    points: dict[str, tuple[dict[str, Any], set[str]]] = {}  # by its parameters, as JSON
    for run in store.sweep_runs(sweep, statuses=TRAINED):  # in the order they were asked
        params = _params_of(flat_settings(run["config"]), search)
        if params is not None:
            key = json.dumps(params, sort_keys=True)
            points.setdefault(key, (params, set()))[1].add(run["config_hash"])
    found = []
    for params, hashes in points.values():
        made = {config.config_hash() for config in search.configs_for(_point(params, search))}
        if hashes & made:  # configs the point makes again (at a seed the plan still has)
            found.append(params)
    return found


def _params_of(flat: dict[str, Any], search: Search) -> dict[str, Any] | None:
    """The parameters, as ``suggest`` asks them, of a stored config's settings (``flat``); None
    where the config is no point of the space."""
    params: dict[str, Any] = {}
    if search.arms:  # a study's one optimizer
        name = search.arms[0]["fixed"]["optimizer"]
        if flat.get("optimizer") != name:
            return None
        params["optimizer"] = name
    for parameter, key, values in _dimensions(search):
        if key not in flat:
            return None
        value = flat[key]
        if isinstance(values, list):
            if value not in values:
                return None
            value = _choices(values)[values.index(value)]
        elif not values["low"] <= value <= values["high"]:
            return None
        params[parameter] = value
    return params


def _point(params: dict[str, Any], search: Search) -> dict[str, Any]:
    """The point (config keys and values, as ``suggest`` returns it) of Optuna's ``params``."""
    point = {"optimizer": params["optimizer"]} if search.arms else {}
    for parameter, key, values in _dimensions(search):
        value = params[parameter]
        point[key] = values[_choices(values).index(value)] if isinstance(values, list) else value
    return point


def _dimensions(search: Search) -> list[tuple[str, str, Any]]:
    """What a study asks: (Optuna's name, the config key, the values) of each of the plan's
    axes, then of its one optimizer's hyperparameters (a study's, as ``studies`` gives it)."""
    found = [(key, key, values) for key, values in search.axes.items()]
    if search.arms:
        found += _arm_parameters(search.arms[0])
    return found


def space(search: Search) -> dict[str, Any]:
    """The search's space as Optuna's distributions, by the names ``suggest`` asks them."""
    found = {key: _distribution(values) for key, values in search.axes.items()}
    if search.arms:
        from optuna.distributions import CategoricalDistribution

        found["optimizer"] = CategoricalDistribution([a["fixed"]["optimizer"] for a in search.arms])
        for arm in search.arms:
            found |= {name: _distribution(values) for name, _, values in _arm_parameters(arm)}
    return found


def describe_space(search: Search) -> dict[str, str]:
    """Each parameter the search asks of Optuna, in words (``sgd.lr``: ``a log range [0.01,
    1]``); an optimizer axis with one choice, a study's own optimizer, is left out."""
    from optuna.distributions import CategoricalDistribution

    return {
        name: _described(distribution)
        for name, distribution in space(search).items()
        if not (
            isinstance(distribution, CategoricalDistribution) and len(distribution.choices) == 1
        )
    }


def check_studies(plan: Plan, store: Store) -> None:
    """Refuse a plan whose space Optuna cannot resume the sweep's studies in: a parameter their
    trials were asked one way (a list, a range, a log range, whole numbers) that the plan now
    asks another, or a list whose choices changed. A range made wider or narrower is resumed:
    Optuna's TPE takes the trials already told as they are. Called before anything of the sweep
    is prepared or written (``open_study`` queues a new study's first points), so that a refused
    plan leaves the store and the journal as it found them."""
    where = journal_path(store)
    for _, search, study in _studies_made(plan, where):
        _check_space(study, search, sweep=plan.name, where=where)


class StudyState(NamedTuple):
    """Where one study of a tuning sweep stands in its journal."""

    name: str
    told: int  # trials that ran their course or were pruned
    pruned: int
    untold: int  # asked and never told: a killed sweep's, trained first when it is run again
    best: float | None  # the best told value: a trial's seeds' mean best validation accuracy
    best_params: dict[str, Any]


def study_states(plan: Plan, store_path: str | Path) -> list[StudyState]:
    """Each of the plan's studies that the journal beside the store at ``store_path`` holds,
    read without writing anything (no journal yet: none)."""
    import optuna

    states = []
    for name, _, study in _studies_made(plan, Path(f"{store_path}{JOURNAL_SUFFIX}")):
        trials = study.get_trials(deepcopy=False)
        done = [t for t in trials if t.state.is_finished()]
        complete = [t for t in done if t.state == optuna.trial.TrialState.COMPLETE]
        best = max(complete, key=lambda t: t.value or 0.0, default=None)
        states.append(
            StudyState(
                name,
                told=len(done),
                pruned=sum(t.state == optuna.trial.TrialState.PRUNED for t in done),
                untold=sum(t.state == optuna.trial.TrialState.RUNNING for t in trials),
                best=None if best is None else best.value,
                best_params={} if best is None else best.params,
            )
        )
    return states


def _studies_made(plan: Plan, where: Path) -> Iterator[tuple[str, Search, Any]]:
    """The plan's studies (``studies``) that the journal at ``where`` holds, each with its
    search and its Optuna study, after every line of the journal is checked to be Optuna's.
    Only read: no journal is made where there is none, and no lock is taken."""
    if not where.is_file():
        return  # no study made yet
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from .journal import check_journal

    check_journal(str(where))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(where)))
    made = set(optuna.get_all_study_names(storage))
    for name, search in studies(plan):
        if name in made:
            yield name, search, optuna.load_study(study_name=name, storage=storage)


def _check_space(study: Any, search: Search, *, sweep: str, where: Path) -> None:
    from optuna.distributions import check_distribution_compatibility

    planned = space(search)
    asked: dict[str, Any] = {}
    for trial in study.get_trials(deepcopy=False):
        for name, distribution in trial.distributions.items():
            asked[name] = distribution  # the latest trial's: the space as last asked
    for name, before in asked.items():
        if name not in planned:
            continue  # an axis the plan dropped is no longer asked
        try:
            check_distribution_compatibility(before, planned[name])
        except ValueError:
            raise ConfigError(
                f"sweep {sweep!r}: {name}: its study in {where} asked {_described(before)}, "
                f"the plan now {_described(planned[name])}, and one Optuna study cannot hold "
                f"both: give the plan another name, or another store"
            ) from None


def _distribution(values: list[Any] | dict[str, Any]) -> Any:
    """One axis as the distribution ``_suggest`` asks it under."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if isinstance(values, list):
        return CategoricalDistribution(_choices(values))
    log = values["kind"] == "log"
    if values["int"]:
        return IntDistribution(math.ceil(values["low"]), math.floor(values["high"]), log=log)
    return FloatDistribution(values["low"], values["high"], log=log)


def _described(distribution: Any) -> str:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        return "a choice of " + ", ".join(str(c) for c in distribution.choices)
    scale = "a log range" if distribution.log else "a range"
    whole = " of whole numbers" if isinstance(distribution, IntDistribution) else ""
    return f"{scale}{whole} [{distribution.low:g}, {distribution.high:g}]"


def latin_hypercube(search: Search, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` points of the search's space (as Optuna names its parameters), each axis split
    into ``n`` equal strata (of its log scale for a log range, of its choices for a list) and
    every stratum drawn once, at a uniform place within it."""
    import numpy as np

    dimensions = [(name, values) for name, _, values in _dimensions(search)]
    fixed: dict[str, Any] = {}
    if search.arms:  # a study's one optimizer (``studies``)
        fixed["optimizer"] = search.arms[0]["fixed"]["optimizer"]
    if n < 1 or not dimensions:
        return []
    # (scipy.stats.qmc has this too, but importing scipy.stats takes most of a second.)
    random = np.random.default_rng(seed)
    strata = random.permuted(np.tile(np.arange(n), (len(dimensions), 1)), axis=1).T
    unit = (strata + random.random((n, len(dimensions)))) / n
    return [
        {**fixed, **{key: _at(values, u) for (key, values), u in zip(dimensions, row, strict=True)}}
        for row in unit
    ]


def _at(values: list[Any] | dict[str, Any], u: float) -> Any:
    """The value at ``u`` (in [0, 1)) along one axis, as ``suggest`` stores it."""
    if isinstance(values, list):
        return _choices(values)[min(int(u * len(values)), len(values) - 1)]
    low, high = values["low"], values["high"]
    if values["kind"] == "log":
        value = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    else:
        value = low + u * (high - low)
    if values["int"]:
        return whole_within(value, values)
    return min(max(_readable(value), low), high)


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
        point["optimizer"] = name
        for parameter, key, values in _arm_parameters(search.arms[names.index(name)]):
            point[key] = _suggest(trial, parameter, values)
    return point


def _arm_parameters(arm: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """An optimizer arm's hyperparameters: (Optuna's name, the config key, the values)."""
    name = arm["fixed"]["optimizer"]
    return [
        (f"{name}.{key.removeprefix('opt.')}", key, values)
        for key, values in arm.items()
        if key != "fixed"
    ]


def _choices(values: list[Any]) -> list[Any]:
    """A list axis's choices as Optuna stores them: as they are, or, where any is a list
    (hidden widths), all as JSON text, the kinds of choice Optuna stores."""
    if all(v is None or isinstance(v, bool | int | float | str) for v in values):
        return list(values)
    return [json.dumps(v) for v in values]


def _readable(value: float) -> float:
    return float(f"{value:.6g}")  # as random search writes them: configs that read well


def _suggest(trial: Any, name: str, values: list[Any] | dict[str, Any]) -> Any:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    asked = _distribution(values)  # the one home of how an axis is asked (check_studies too)
    if isinstance(asked, CategoricalDistribution):
        assert isinstance(values, list)  # only a list is asked as a choice
        return values[asked.choices.index(trial.suggest_categorical(name, asked.choices))]
    if isinstance(asked, IntDistribution):
        return trial.suggest_int(name, asked.low, asked.high, log=asked.log)
    return _readable(trial.suggest_float(name, asked.low, asked.high, log=asked.log))


def judged_value(record: EpochRecord, metric: str) -> float:
    """What a pruner judges of one run's epoch: its validation accuracy, or for ``val_cost``,
    exp(-cost), the geometric mean of the probabilities it gives the true labels. Both are
    higher for better and 0 for a run that diverged, so the study maximizes either one, and
    its journal holds no infinities for Optuna's dashboard to misread.

    Examples:
      >>> from types import SimpleNamespace
      >>> record = SimpleNamespace(val_accuracy=0.8, val_cost=math.log(2))
      >>> judged_value(record, "val_accuracy"), judged_value(record, "val_cost")
      (0.8, 0.5)
      >>> judged_value(SimpleNamespace(val_accuracy=None, val_cost=math.nan), "val_cost")
      0.0
    """
    return _judged(getattr(record, metric), metric)  # the metric is named as the record's field


def _judged(value: float | None, metric: str) -> float:
    if value is None or not math.isfinite(value):
        return 0.0
    return math.exp(-value) if metric == "val_cost" else value


class _Judge:
    """A batch of trials as their runs train. After each epoch that every run going has
    reached, the mean of each trial's seeds' ``judged_value`` (the plan's ``metric``) goes to
    its study; only then does the pruner judge them, best first, and the runs of each trial it
    stops are marked ``pruned`` (the engine stops them at that epoch, and their cohort sheds
    them).

    Judged best first, each trial meets at its rung the batch's better ones and every earlier
    trial: with Optuna's successive halving (asynchronous, ASHA), a batch of fewer than twice
    the reduction factor is halved as synchronous successive halving would halve it, and the
    first trial of a study no longer runs its course for want of a rival."""

    def __init__(
        self,
        trials: list[Any],
        hashes: list[list[str]],
        reported: list[set[int]] | None = None,
        *,
        metric: str = "val_accuracy",
    ) -> None:
        self.trials = trials
        self.metric = metric
        self.trial_of = {h: t for t, trial_hashes in enumerate(hashes) for h in trial_hashes}
        self.started: set[str] = set()
        self.runs: dict[str, Run] = {}
        self.values: dict[int, dict[str, float]] = {}  # epoch -> config hash -> judged value
        # The epochs each trial has reported already (a resumed trial's), not reported again.
        self.reported = [_reported(trial) for trial in trials] if reported is None else reported

    def on_start(self, position: int, config: Any) -> None:
        self.started.add(config.config_hash())

    def on_epoch(self, run: Run, record: EpochRecord, costs: Any) -> None:
        key = run.config.config_hash()
        self.runs[key] = run
        value = judged_value(record, self.metric)
        epoch = record.epoch
        seen = self.values.setdefault(epoch, {})
        seen[key] = value
        if any(h not in seen and self._going(h, epoch) for h in self.started):
            return
        means = {}
        for t, trial in enumerate(self.trials):
            values = [v for h, v in seen.items() if self.trial_of[h] == t]
            if values and epoch not in self.reported[t]:
                self.reported[t].add(epoch)
                means[t] = sum(values) / len(values)
                trial.report(means[t], epoch)
        if epoch == run.config.epochs:
            return  # run their course: pruning them now would save nothing and hide them
        for t in sorted(means, key=means.__getitem__, reverse=True):
            if self.trials[t].should_prune():
                for h, other in self.runs.items():
                    if self.trial_of[h] == t and other.status == "running":
                        other.status = "pruned"

    def _going(self, key: str, epoch: int) -> bool:
        """Whether the run of ``key`` trains ``epoch``: not stopped at an earlier one."""
        run = self.runs.get(key)
        return run is None or run.status == "running" or run.epochs[-1].epoch >= epoch


def _reported(trial: Any) -> set[int]:
    """The epochs an Optuna trial has reported."""
    return set(trial.storage.get_trial(trial._trial_id).intermediate_values)


@dataclass
class _RemoteTrial:
    """A trial as a worker sees it: its reports and ``should_prune`` are questions to the driver,
    which puts them to the trial's study (``_answer``)."""

    ask: Callable[[Any], Any]

    def report(self, value: float, step: int) -> None:
        self.ask(("report", value, step))

    def should_prune(self) -> bool:
        return bool(self.ask(("should_prune",)))


def _answer(trial: Any, question: tuple[Any, ...]) -> Any:
    """In the driver: what a worker's ``_RemoteTrial`` asked of ``trial``."""
    if question[0] == "report":
        trial.report(question[1], question[2])
        return None
    return trial.should_prune()


def _train_judged(
    configs: list[RunConfig],
    data: Dataset,
    ask: Callable[[Any], Any],
    reported: set[int],
    metric: str = "val_accuracy",
) -> list[Run]:
    """In a worker: one trial's runs (its seeds) as one cohort, judged after each epoch by the
    driver's study through ``ask``; the runs of a trial it stops end ``pruned`` at that epoch."""
    from ..engine import train, train_cohort

    hashes = [config.config_hash() for config in configs]
    judge = _Judge([_RemoteTrial(ask)], [hashes], [set(reported)], metric=metric)
    judge.started.update(hashes)
    if len(configs) > 1:
        return train_cohort(configs, data=data, on_epoch=judge.on_epoch)
    return [train(configs[0], data=data, on_epoch=judge.on_epoch)]


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

    ``batch`` trials are asked at a time. In this process (``InProcess``) their runs train as
    one cohort and are judged together after every epoch (``_Judge``). Elsewhere (worker
    processes, Ray), each trial's runs train as one cohort in a worker and are judged as they
    reach each epoch (``_train_judged``); without a pruner, every run is a task of its own.
    """
    judged = isinstance(executor, InProcess)
    if plan.search.prune != "none":  # so that compare weighs its decisions on the same signal
        store.set_sweep_pruning(plan.name, plan.search.prune, plan.search.prune_metric)
    journal = open_journal(store)
    try:
        for index, (name, search) in enumerate(studies(plan)):
            stored = functools.partial(stored_points, store, plan.name, search)
            study = open_study(search, journal, name, index=index, stored=stored)
            first = index * search.trials * len(search.seeds)  # its runs' positions in the sweep
            sweep = _Sweep(plan.name, first, search, store, executor, report, hooks, judged)
            _run_study(study, sweep, batch)
    finally:
        journal.close()


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
    before = study.get_trials(deepcopy=False)
    # The trials a killed sweep asked and never told come first, with their own parameters.
    waiting = [optuna.trial.Trial(study, t._trial_id) for t in before if t.state == running]
    trials = sweep.search.trials
    told = sorted(t.number for t in before if t.state.is_finished())
    _skip_told(sweep, told[:trials])  # of this plan's trials: it may ask fewer
    while waiting or _asked(study) < trials:
        while len(waiting) < batch and _asked(study) < trials:
            waiting.append(study.ask())
        asked, waiting = waiting[:batch], waiting[batch:]
        before = len(sweep.report.run_ids)
        _train_trials(sweep, asked)
        trained = set(sweep.report.run_ids[before:])
        for trial in asked:
            _tell(study, sweep, trial, trained)


def _skip_told(sweep: _Sweep, told: list[int]) -> None:
    """Count the runs of the trials numbered ``told``, told before this sweep, as skipped (they
    are in the store), and say so to the caller run by run, as a grid sweep says it of the
    configs it finds stored."""
    seeds = len(sweep.search.seeds)
    sweep.report.skipped += len(told) * seeds
    for number in told:
        for i in range(seeds):
            sweep.hooks.end(sweep.first + number * seeds + i, None)


def _replay(trial: Any, store: Store, rows: list[dict], metric: str) -> bool:
    """Report to ``trial`` the epochs its stored runs trained that it was never told: runs the
    store held before the study asked for them (its journal was lost, or another plan trained
    the same configs), or that ended after a sweep was killed and before it told the trial.
    Each epoch is judged as ``_Judge`` judges it, the pruner asked after each but the last, so
    that its rungs and the sampler hold the trial as if it had trained here. Whether any was."""
    reported = _reported(trial)
    if max(reported, default=0) >= max(row["epochs"] for row in rows):
        return False  # told every epoch already: no query of the store
    values: dict[int, list[float]] = {}
    for _, epoch, value in store.epoch_rows([row["run_id"] for row in rows], ("epoch", metric)):
        values.setdefault(epoch, []).append(_judged(value, metric))
    last = max(row["config"]["epochs"] for row in rows)
    for epoch in sorted(set(values) - reported):
        trial.report(sum(values[epoch]) / len(values[epoch]), epoch)
        if epoch < last:
            trial.should_prune()  # the store says how the trial ended; this fills the rungs
    return True


def _asked(study: Any) -> int:
    """How many trials the study has asked (those queued for asking not counted)."""
    import optuna

    waiting = optuna.trial.TrialState.WAITING
    return sum(trial.state != waiting for trial in study.get_trials(deepcopy=False))


def _train_trials(sweep: _Sweep, trials: list[Any]) -> None:
    search = sweep.search
    seeds = len(search.seeds)
    each: list[Todo] = []  # each trial's runs, one a seed
    every: list[list[str]] = []  # and their config hashes
    for trial in trials:
        configs = search.configs_for(suggest(trial, search))
        hashes = [c.config_hash() for c in configs]
        trial.set_user_attr("config_hashes", hashes)
        start = sweep.first + trial.number * seeds
        sweep.store.add_to_sweep(sweep.name, hashes, start=start)
        each.append([(start + i, c) for i, c in enumerate(configs)])
        every.append(hashes)
    hooks = sweep.hooks
    if not sweep.judged and search.prune != "none":  # each trial a task, judged as it trains
        assert isinstance(sweep.executor, Returning)
        tasks = [
            Task(
                items,
                _train_judged,
                (_reported(trial), search.prune_metric),
                functools.partial(_answer, trial),
            )
            for items, trial in zip(each, trials, strict=True)
        ]
        sweep.executor.execute_tasks(tasks, sweep.store, sweep.report, hooks)
        return
    if sweep.judged:  # the batch's runs train as one cohort where the engine allows
        judge = _Judge(trials, every, metric=search.prune_metric)
        hooks = Hooks(
            _chain(judge.on_start, hooks.on_run_start),
            _chain(judge.on_epoch, hooks.on_epoch),
            hooks.on_run_end,
        )
    todo = [item for items in each for item in items]
    sweep.executor.execute(todo, sweep.store, sweep.report, hooks)


def _tell(study: Any, sweep: _Sweep, trial: Any, trained: set[int]) -> None:
    """Tell the study how ``trial`` went, from what the store holds of its runs: pruned, or the
    mean of its seeds' best validation accuracies. A trial whose runs another sweep is training
    right now is left to that sweep to tell. One whose runs none of ``trained`` (the run ids
    this sweep just trained) is, is first told their epochs from the store (``_replay``)."""
    import optuna

    hashes = trial.storage.get_trial_user_attrs(trial._trial_id)["config_hashes"]
    rows = sweep.store.latest_runs(hashes)
    if len(rows) < len(hashes):
        return
    stored = list(rows.values())
    if not any(row["run_id"] in trained for row in stored):
        if _replay(trial, sweep.store, stored, sweep.search.prune_metric):
            sweep.report.replayed += 1
    if any(row["status"] == "pruned" for row in stored):
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return
    best = [row["best_val_accuracy"] or 0.0 for row in stored]
    study.tell(trial, sum(best) / len(best))
