"""Run every config of a plan into the store, skipping those already done, so a sweep resumes.

    costhill sweep lr-demo.toml --set epochs=1 --set dataset=fashion-mnist-sample

A config is done when the store holds a finished or diverged run with its config hash (whatever
sweep trained it). Each run's epochs are committed as they finish; a Ctrl-C marks the run in
progress ``interrupted`` and leaves every finished run stored. A diverged run is stored as such and
the sweep goes on. Only this driver process writes the store; where the runs train is the
executor's business (``executors``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..config import RunConfig
from ..data import Dataset
from ..engine import check_batch_size, prepare_process
from ..errors import ConfigError
from ..records import Run
from ..store import Store
from .executors import (
    COHORT_MAX_ARMS,
    AbstractExecutor,
    DataCache,
    Hooks,
    InProcess,
    RayCluster,
    SweepReport,
    WorkerProcesses,
    check_ray_head,
)
from .plans import Plan

# A seconds budget trains whole epochs until the time is spent, up to this many.
SECONDS_BUDGET_EPOCH_CAP = 10_000


def resolve_budget(plan: Plan, config: RunConfig, data: Dataset) -> RunConfig:
    """Turn the plan's budget into the config's epochs (or epoch cap and seconds)."""
    if plan.budget.kind == "epochs":
        return config
    if plan.budget.kind == "seconds":
        return config.replace(epochs=SECONDS_BUDGET_EPOCH_CAP, max_seconds=plan.budget.amount)
    n = len(data.train)
    return config.replace(epochs=plan.budget.epochs_for(n, config.steps_per_epoch(n)))


def run_plan(
    plan: Plan,
    store: Store,
    *,
    data_dir: str | None = None,
    workers: int = 1,
    ray_address: str | None = None,
    cohorts: str = "auto",
    on_run_start: Callable[[int, RunConfig], None] | None = None,
    on_epoch: Callable[[Run, Any, Any], None] | None = None,
    on_run_end: Callable[[int, Run | None], None] | None = None,
) -> SweepReport:
    """Train the plan's configs that the store lacks; return what was done.

    ``cohorts``: ``auto`` trains configs that differ only in seed or initializer together as one
    vmap-ed cohort where BENCHMARKS.md shows it pays on a CPU (plain SGD, small batches),
    ``always`` does so for any config, ``never`` trains every run alone.
    With ``ray_address`` each run is a task on that Ray cluster, also returning to this process.
    With ``workers > 1`` the runs train in that many local processes and come back whole to this
    one, which alone writes the store (a run is then stored when it ends, not epoch by epoch).
    ``on_run_start(position, config)`` and ``on_run_end(position, run or None if skipped)`` let a
    caller show progress; ``on_epoch`` is passed through to ``train`` when training in-process.
    """
    if ray_address is not None:
        check_ray_head(ray_address)  # before anything is loaded or stored
    started = time.perf_counter()
    data_for = DataCache(data_dir)
    hooks = Hooks(on_run_start, on_epoch, on_run_end)
    if plan.search.kind == "tpe":
        from .tuning import check_studies, tune

        check_studies(plan, store)  # a changed space stops the sweep before any study moves
        first = plan.search.configs_for(plan.search.first_point())
        prepare_process(first)
        _check_batch_sizes(plan, first, data_for)
        store.set_sweep_ranges(plan.name, plan.ranges)
        report = SweepReport(planned=len(plan))
        # A batch of trials trains as one cohort here, so that they are judged together.
        batch = max(workers, plan.search.sampler["batch"])
        executor = _executor(
            data_dir,
            workers,
            ray_address,
            data_for,
            cohorts="always",
            max_arms=batch * len(plan.search.seeds),
        )
        tune(plan, store, executor, report, hooks, batch=batch)
        report.wall_seconds = time.perf_counter() - started
        return report
    prepare_process(plan.configs)
    resolved = [resolve_budget(plan, c, data_for(c)) for c in plan.configs]
    _check_batch_sizes(plan, resolved, data_for)
    hashes = [c.config_hash() for c in resolved]
    store.add_to_sweep(plan.name, hashes)
    store.set_sweep_ranges(plan.name, plan.ranges)
    done = store.done_hashes(hashes)
    report = SweepReport(planned=len(resolved))
    todo = []
    for position, (config, config_hash) in enumerate(zip(resolved, hashes, strict=True)):
        if config_hash in done:
            report.skipped += 1
            hooks.end(position, None)
        else:
            todo.append((position, config))
    _executor(data_dir, workers, ray_address, data_for, cohorts=cohorts).execute(
        todo, store, report, hooks
    )
    report.wall_seconds = time.perf_counter() - started
    return report


def _executor(
    data_dir: str | None,
    workers: int,
    ray_address: str | None,
    data_for: DataCache,
    *,
    cohorts: str,
    max_arms: int = COHORT_MAX_ARMS,
) -> AbstractExecutor:
    if ray_address is not None:
        return RayCluster(data_dir, address=ray_address)
    if workers > 1:
        return WorkerProcesses(data_dir, workers=workers)
    return InProcess(data_for, cohorts=cohorts, max_arms=max_arms)


def _check_batch_sizes(plan: Plan, configs: list[RunConfig], data_for: DataCache) -> None:
    for config in configs:  # every config, before any trains
        try:
            check_batch_size(config, data_for(config))
        except ConfigError as err:
            raise ConfigError(f"{plan.source}: {err}") from None
