"""Run every config of a plan into the store, skipping those already done, so a sweep resumes.

    costhill sweep lr-demo.toml --set epochs=1 --set dataset=fashion-mnist-sample

A config is done when the store holds a finished or diverged run with its config hash (whatever
sweep trained it). Each run's epochs are committed as they finish; a Ctrl-C marks the run in
progress ``interrupted`` and leaves every finished run stored. A diverged run is stored as such and
the sweep goes on. Only this driver process writes the store.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .config import RunConfig
from .data import Dataset, load
from .errors import ConfigError
from .plans import Plan
from .store import Store
from .training import COHORT_FIELDS, Run, train, train_cohort

# A seconds budget trains whole epochs until the time is spent, up to this many.
SECONDS_BUDGET_EPOCH_CAP = 10_000
# On the 2-core CPU (BENCHMARKS.md, three runs) a cohort of 8 paid 1.27-1.40x for plain-SGD
# batch-1 epochs, 0.91-1.11x for Adam at batch 64 and 1.01-1.23x for Adam at batch 1: tiny steps of
# a stateless update are bound by per-step overhead, which arms share; Adam's per-step update is
# bound by memory traffic, which every arm pays in full. So auto means: plain SGD, small batches.
COHORT_MAX_BATCH = 16
COHORT_OPTIMIZERS = ("sgd",)
COHORT_MAX_ARMS = 8


def cohort_groups(
    todo: list[tuple[int, RunConfig]], cohorts: str
) -> list[list[tuple[int, RunConfig]]]:
    """Group configs that may train as one cohort (see ``run_plan``), in plan order."""
    if cohorts not in ("auto", "always", "never"):
        raise ValueError(f"cohorts must be auto, always or never, not {cohorts!r}")
    by_rest: dict[str, list[tuple[int, RunConfig]]] = {}
    for item in todo:
        config = item[1].to_dict()
        # Hyperparameter values may differ within a cohort only under a constant schedule, and
        # its arms must name the same hyperparameters.
        free = COHORT_FIELDS if config["schedule"] == "constant" else ("seed", "init", "bias_init")
        rest = {k: v for k, v in config.items() if k not in free}
        rest["opt keys"] = sorted(config["opt"])
        by_rest.setdefault(json.dumps(rest, sort_keys=True), []).append(item)
    groups: list[list[tuple[int, RunConfig]]] = []
    for members in by_rest.values():
        first = members[0][1]
        small = first.batch_size != "full" and int(first.batch_size) <= COHORT_MAX_BATCH
        pays = small and first.optimizer in COHORT_OPTIMIZERS and not dict(first.opt)
        together = cohorts == "always" or (cohorts == "auto" and pays)
        if len(members) > 1 and together and first.optimizer != "noisy_sgd":
            groups += [
                members[i : i + COHORT_MAX_ARMS] for i in range(0, len(members), COHORT_MAX_ARMS)
            ]
        else:
            groups += [[member] for member in members]
    return sorted(groups, key=lambda group: group[0][0])


@dataclass
class SweepReport:
    planned: int
    skipped: int = 0
    trained: int = 0
    diverged: int = 0
    elsewhere: int = 0  # claimed by another sweep running at the same time
    run_ids: list[int] = field(default_factory=list)
    wall_seconds: float = 0.0
    training_seconds: float = 0.0  # compile, train and evaluation time of the runs themselves


def resolve_budget(plan: Plan, config: RunConfig, data: Dataset) -> RunConfig:
    """Turn the plan's budget into the config's epochs (or epoch cap and seconds)."""
    if plan.budget.kind == "epochs":
        return config
    if plan.budget.kind == "seconds":
        return config.replace(epochs=SECONDS_BUDGET_EPOCH_CAP, max_seconds=plan.budget.amount)
    n = len(data.train)
    batch = config.effective_batch_size(n)
    steps_per_epoch = n // batch + (0 if config.drop_last or n % batch == 0 else 1)
    return config.replace(epochs=plan.budget.epochs_for(n, steps_per_epoch))


_WORKER_DATA: dict[tuple[Any, ...], Dataset] = {}


def _cached_data(
    cache: dict[tuple[Any, ...], Dataset], config: RunConfig, data_dir: str | None
) -> Dataset:
    """The config's dataset and split, loaded once per cache."""
    key = (config.dataset, config.validation, config.split_seed)
    if key not in cache:
        cache[key] = load(
            config.dataset,
            data_dir=data_dir,
            validation=config.validation,
            split_seed=config.split_seed,
        )
    return cache[key]


def _train_in_worker(config: RunConfig, data_dir: str | None) -> Run:
    """Train one config in a worker process (each worker loads each dataset once)."""
    return train(config, data=_cached_data(_WORKER_DATA, config, data_dir))


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
    vmap-ed cohort where BENCHMARKS.md shows it pays on a CPU (plain SGD, batch at most
    ``COHORT_MAX_BATCH``), ``always`` does so for any config, ``never`` trains every run alone.
    With ``ray_address`` each run is a task on that Ray cluster, also returning to this process.
    With ``workers > 1`` the runs train in that many local processes and come back whole to this
    one, which alone writes the store (a run is then stored when it ends, not epoch by epoch).
    ``on_run_start(position, config)`` and ``on_run_end(position, run or None if skipped)`` let a
    caller show progress; ``on_epoch`` is passed through to ``train`` when training in-process.
    """
    if ray_address is not None:
        check_ray_head(ray_address)  # before anything is loaded or stored
    started = time.perf_counter()
    datasets: dict[tuple[Any, ...], Dataset] = {}

    def data_for(config: RunConfig) -> Dataset:
        return _cached_data(datasets, config, data_dir)

    resolved = [resolve_budget(plan, c, data_for(c)) for c in plan.configs]
    hashes = [c.config_hash() for c in resolved]
    store.add_to_sweep(plan.name, hashes)
    done = store.done_hashes(hashes)
    report = SweepReport(planned=len(resolved))
    todo = []
    for position, (config, config_hash) in enumerate(zip(resolved, hashes, strict=True)):
        if config_hash in done:
            report.skipped += 1
            if on_run_end is not None:
                on_run_end(position, None)
        else:
            todo.append((position, config))
    if ray_address is not None or workers > 1:
        # Runs that train elsewhere come back whole and are stored here.
        dispatch = (
            partial(_run_on_ray, address=ray_address)
            if ray_address is not None
            else partial(_run_in_workers, workers=workers)
        )
        dispatch(
            todo, store, report, data_dir=data_dir, on_run_start=on_run_start, on_run_end=on_run_end
        )
        report.wall_seconds = time.perf_counter() - started
        return report
    for group in cohort_groups(todo, cohorts):
        group = _claimed(group, store, report, on_run_end)
        if not group:
            continue
        for position, config in group:
            if on_run_start is not None:
                on_run_start(position, config)
        run_started = time.perf_counter()
        current: list[Run] = []

        def begin(run: Run, current: list[Run] = current) -> None:
            current.append(run)
            store.begin(run)

        def epoch_done(run: Run, record: Any, costs: Any) -> None:
            store.add_epoch(run, record, costs)
            if on_epoch is not None:
                on_epoch(run, record, costs)

        configs = [config for _, config in group]
        data = data_for(configs[0])
        try:
            runs = (
                train_cohort(configs, data=data, on_start=begin, on_epoch=epoch_done)
                if len(configs) > 1
                else [train(configs[0], data=data, on_start=begin, on_epoch=epoch_done)]
            )
        except KeyboardInterrupt:
            for run in current:
                if run.run_id is not None:
                    store.mark(run.run_id, "interrupted")
            raise
        for (position, _), run in zip(group, runs, strict=True):
            store.finish(run)
            store.release(run.config.config_hash())
            report.trained += 1
            report.diverged += run.status == "diverged"
            report.run_ids.append(int(run.run_id or 0))
            if on_run_end is not None:
                on_run_end(position, run)
        report.training_seconds += time.perf_counter() - run_started
    report.wall_seconds = time.perf_counter() - started
    return report


def _claimed(
    items: list[tuple[int, RunConfig]],
    store: Store,
    report: SweepReport,
    on_run_end: Callable[[int, Run | None], None] | None,
) -> list[tuple[int, RunConfig]]:
    """The items this process may train now: the rest are done or claimed by another sweep."""
    kept = []
    for position, config in items:
        if store.claim(config.config_hash()):
            kept.append((position, config))
        else:
            if store.done_hashes([config.config_hash()]):
                report.skipped += 1
            else:
                report.elsewhere += 1
            if on_run_end is not None:
                on_run_end(position, None)
    return kept


def _store_returned(
    run: Run,
    position: int,
    store: Store,
    report: SweepReport,
    on_run_end: Callable[[int, Run | None], None] | None,
) -> None:
    """Store a run that came back whole from a worker process or a Ray task."""
    run.run_id = None
    store.save(run)
    store.release(run.config.config_hash())
    report.trained += 1
    report.diverged += run.status == "diverged"
    report.run_ids.append(int(run.run_id or 0))
    report.training_seconds += run.compile_seconds + sum(
        e.seconds + e.eval_seconds for e in run.epochs
    )
    if on_run_end is not None:
        on_run_end(position, run)


def _run_in_workers(
    todo: list[tuple[int, RunConfig]],
    store: Store,
    report: SweepReport,
    *,
    data_dir: str | None,
    workers: int,
    on_run_start: Callable[[int, RunConfig], None] | None,
    on_run_end: Callable[[int, Run | None], None] | None,
) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # spawn, not fork: a forked JAX runtime is not safe to use.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        pending = {}
        for position, config in _claimed(todo, store, report, on_run_end):
            if on_run_start is not None:
                on_run_start(position, config)
            pending[pool.submit(_train_in_worker, config, data_dir)] = position
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    _store_returned(future.result(), pending.pop(future), store, report, on_run_end)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def check_ray_head(address: str, *, timeout: float = 3.0) -> None:
    """Fail within seconds when Ray is missing or nothing listens at ``address`` (Ray's own
    connect waits minutes before it gives up)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'costhill[ray]'") from None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except ValueError:
        raise ConfigError(f"--ray {address}: expected HOST:PORT of a Ray head") from None
    except OSError as err:
        raise ConfigError(
            f"--ray {address}: no Ray head reachable ({err.strerror or err}); start one with "
            "`ray start --head` or check the address"
        ) from None


def _run_on_ray(
    todo: list[tuple[int, RunConfig]],
    store: Store,
    report: SweepReport,
    *,
    address: str,
    data_dir: str | None,
    on_run_start: Callable[[int, RunConfig], None] | None,
    on_run_end: Callable[[int, Run | None], None] | None,
) -> None:
    """Each run is a Ray task; results come back to this driver, which alone writes the store.

    Every Ray node needs costhill installed and the data where ``data_dir`` (or costhill's usual
    search) finds it on that node.
    """
    import ray

    ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1)(_train_in_worker)
        pending = {}
        for position, config in _claimed(todo, store, report, on_run_end):
            if on_run_start is not None:
                on_run_start(position, config)
            pending[task.remote(config, data_dir)] = position
        while pending:
            finished, _ = ray.wait(list(pending), num_returns=1)
            for ref in finished:
                _store_returned(ray.get(ref), pending.pop(ref), store, report, on_run_end)
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        ray.shutdown()
