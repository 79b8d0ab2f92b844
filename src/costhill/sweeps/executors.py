"""Where a sweep's runs train: in this process, in local worker processes, or on a Ray cluster.

Each is an executor with one method, ``execute(todo, store, report, hooks)``. Whatever trains
where, only the driver process writes the store: runs trained in this process are written epoch
by epoch; runs trained elsewhere come back whole and are stored when they end.
"""

from __future__ import annotations

import logging
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..config import COHORT_CHOICES, RunConfig
from ..data import Dataset, load_for
from ..engine import check_memory, cohort_signature, train, train_cohort
from ..errors import ConfigError
from ..records import Run
from ..store import Store

# Whether a cohort pays on a CPU depends on the update's cost per step: tiny steps of a stateless
# update are bound by per-step overhead, which the arms share, while Adam's per-step update is
# bound by memory traffic, which every arm pays in full (BENCHMARKS.md, "Cohorts"). So auto means:
# plain SGD, small batches.
COHORT_MAX_BATCH = 16
COHORT_OPTIMIZERS = ("sgd",)
COHORT_MAX_ARMS = 8

Todo = list[tuple[int, RunConfig]]  # (position in the plan, config) of each run to train


@dataclass
class SweepReport:
    planned: int
    skipped: int = 0
    trained: int = 0
    diverged: int = 0
    pruned: int = 0  # stopped early by a tuning sweep's pruner
    elsewhere: int = 0  # claimed by another sweep running at the same time
    run_ids: list[int] = field(default_factory=list)
    wall_seconds: float = 0.0
    training_seconds: float = 0.0  # compile, train and evaluation time of the runs themselves


@dataclass(frozen=True)
class Hooks:
    """A caller's view of a sweep: ``on_run_end`` gets None for a run it skipped."""

    on_run_start: Callable[[int, RunConfig], None] | None = None
    on_epoch: Callable[[Run, Any, Any], None] | None = None
    on_run_end: Callable[[int, Run | None], None] | None = None

    def start(self, position: int, config: RunConfig) -> None:
        if self.on_run_start is not None:
            self.on_run_start(position, config)

    def end(self, position: int, run: Run | None) -> None:
        if self.on_run_end is not None:
            self.on_run_end(position, run)


class DataCache:
    """Each dataset and split a sweep needs, loaded once."""

    def __init__(self, data_dir: str | None) -> None:
        self.data_dir = data_dir
        self.loaded: dict[tuple[Any, ...], Dataset] = {}

    def __call__(self, config: RunConfig) -> Dataset:
        key = (config.dataset, config.validation, config.split_seed)
        if key not in self.loaded:
            self.loaded[key] = load_for(config, data_dir=self.data_dir)
        return self.loaded[key]


class AbstractExecutor(ABC):
    @abstractmethod
    def execute(self, todo: Todo, store: Store, report: SweepReport, hooks: Hooks) -> None:
        """Train every run of ``todo`` that this process can claim, storing each one."""


def claimed(todo: Todo, store: Store, report: SweepReport, hooks: Hooks) -> Todo:
    """The items this process may train now: the rest are done or claimed by another sweep."""
    kept = []
    for position, config in todo:
        if store.claim(config.config_hash()):
            kept.append((position, config))
            continue
        if store.done_hashes([config.config_hash()]):
            report.skipped += 1
        else:
            report.elsewhere += 1
        hooks.end(position, None)
    return kept


def _count_trained(run: Run, report: SweepReport) -> None:
    report.trained += 1
    report.diverged += run.status == "diverged"
    report.pruned += run.status == "pruned"
    report.run_ids.append(int(run.run_id or 0))


def cohort_groups(todo: Todo, cohorts: str, *, max_arms: int = COHORT_MAX_ARMS) -> list[Todo]:
    """Group configs that may train as one cohort (``engine.cohort_signature``), in plan order,
    at most ``max_arms`` a cohort.

    ``auto`` groups them where a cohort pays on a CPU (plain SGD, batches of at most
    ``COHORT_MAX_BATCH``), ``always`` wherever the engine allows, ``never`` nowhere.
    """
    if cohorts not in COHORT_CHOICES:
        raise ValueError(f"cohorts must be auto, always or never, not {cohorts!r}")
    by_signature: dict[str, Todo] = {}
    for item in todo:
        by_signature.setdefault(cohort_signature(item[1]), []).append(item)
    groups: list[Todo] = []
    for members in by_signature.values():
        first = members[0][1]
        small = first.batch_size != "full" and int(first.batch_size) <= COHORT_MAX_BATCH
        pays = small and first.optimizer in COHORT_OPTIMIZERS and not dict(first.opt)
        together = cohorts == "always" or (cohorts == "auto" and pays)
        if len(members) > 1 and together and first.optimizer != "noisy_sgd":
            groups += [members[i : i + max_arms] for i in range(0, len(members), max_arms)]
        else:
            groups += [[member] for member in members]
    return sorted(groups, key=lambda group: group[0][0])


class InProcess(AbstractExecutor):
    """Train here, a cohort at a time (of at most ``max_arms``), writing every epoch to the
    store as it ends."""

    def __init__(
        self, data_for: DataCache, *, cohorts: str = "auto", max_arms: int = COHORT_MAX_ARMS
    ) -> None:
        self.data_for = data_for
        self.cohorts = cohorts
        self.max_arms = max_arms

    def execute(self, todo: Todo, store: Store, report: SweepReport, hooks: Hooks) -> None:
        groups = cohort_groups(todo, self.cohorts, max_arms=self.max_arms)
        for group in groups:  # every one, before any trains
            check_memory([config for _, config in group], self.data_for(group[0][1]))
        for group in groups:
            group = claimed(group, store, report, hooks)
            if not group:
                continue
            started = time.perf_counter()
            runs = self._train_group(group, store, hooks)
            for (position, _), run in zip(group, runs, strict=True):
                store.finish(run)
                store.release(run.config.config_hash())
                _count_trained(run, report)
                hooks.end(position, run)
            report.training_seconds += time.perf_counter() - started

    def _train_group(self, group: Todo, store: Store, hooks: Hooks) -> list[Run]:
        for position, config in group:
            hooks.start(position, config)
        configs = [config for _, config in group]
        stopped = {c.config_hash(): store.stopped_run(c.config_hash()) for c in configs}
        replacing = {h: s[0] for h, s in stopped.items() if s is not None and not s[1]}
        current: list[Run] = []

        def begin(run: Run) -> None:
            current.append(run)
            if run.run_id is None:
                store.begin(run, replacing=replacing.get(run.config.config_hash()))
            else:  # an interrupted run, continued
                store.reopen(run)

        def epoch_done(run: Run, record: Any, costs: Any) -> None:
            store.add_epoch(run, record, costs)
            if hooks.on_epoch is not None:
                hooks.on_epoch(run, record, costs)

        data = self.data_for(configs[0])
        continued = any(s is not None and s[1] for s in stopped.values())
        try:
            if len(configs) > 1 and not continued:
                return train_cohort(configs, data=data, on_start=begin, on_epoch=epoch_done)
            # A run that kept its state goes on alone, from where it stopped; a cohort keeps
            # none (its members are restarted in place, above).
            return [
                train(
                    config,
                    data=data,
                    on_start=begin,
                    on_epoch=epoch_done,
                    keep_state=True,
                    resume=_continuing(store, stopped[config.config_hash()]),
                )
                for config in configs
            ]
        except KeyboardInterrupt:
            for run in current:
                if run.run_id is not None:
                    store.mark(run.run_id, "interrupted")
            raise


def _continuing(store: Store, stopped: tuple[int, bool] | None) -> Run | None:
    """The stopped run to continue, with its kept state; None to train from the start."""
    return store.resumable(stopped[0]) if stopped is not None and stopped[1] else None


_WORKER_DATA: dict[str | None, DataCache] = {}


def train_elsewhere(config: RunConfig, data_dir: str | None) -> Run:
    """Train one config in a worker process or Ray task (each loads each dataset once)."""
    data_for = _WORKER_DATA.setdefault(data_dir, DataCache(data_dir))
    return train(config, data=data_for(config))


class _Returning(AbstractExecutor):
    """Runs that train in other processes and come back whole, to be stored here."""

    data_dir: str | None

    @contextmanager
    @abstractmethod
    def session(self) -> Iterator[None]: ...

    @abstractmethod
    def submit(self, config: RunConfig) -> Any: ...

    @abstractmethod
    def finished(self, pending: list[Any]) -> list[Any]:
        """Wait until at least one of ``pending`` has finished; return those that have."""

    @abstractmethod
    def result(self, handle: Any) -> Run: ...

    @abstractmethod
    def cancel(self, pending: list[Any]) -> None: ...

    def execute(self, todo: Todo, store: Store, report: SweepReport, hooks: Hooks) -> None:
        with self.session():
            pending: dict[Any, int] = {}
            for position, config in claimed(todo, store, report, hooks):
                hooks.start(position, config)
                pending[self.submit(config)] = position
            try:
                while pending:
                    for handle in self.finished(list(pending)):
                        self._store(self.result(handle), pending.pop(handle), store, report, hooks)
            except KeyboardInterrupt:
                self.cancel(list(pending))
                raise

    @staticmethod
    def _store(run: Run, position: int, store: Store, report: SweepReport, hooks: Hooks) -> None:
        run.run_id = None
        store.save(run)
        store.release(run.config.config_hash())
        _count_trained(run, report)
        report.training_seconds += run.compile_seconds + sum(
            e.seconds + e.eval_seconds for e in run.epochs
        )
        hooks.end(position, run)


@dataclass
class WorkerProcesses(_Returning):
    """Train in ``workers`` local processes (started with spawn: a forked JAX is not safe)."""

    data_dir: str | None
    workers: int
    pool: Any = None

    @contextmanager
    def session(self) -> Iterator[None]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=context) as self.pool:
            yield

    def submit(self, config: RunConfig) -> Any:
        return self.pool.submit(train_elsewhere, config, self.data_dir)

    def finished(self, pending: list[Any]) -> list[Any]:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Any) -> Run:
        return handle.result()

    def cancel(self, pending: list[Any]) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def check_ray_head(address: str, *, timeout: float = 3.0) -> None:
    """Fail within seconds when Ray is missing or nothing listens at ``address`` (Ray's own
    connect waits minutes before it gives up)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise ConfigError("ray_address needs Ray: pip install 'costhill[ray]'") from None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except ValueError:
        raise ConfigError(f"ray_address {address}: expected HOST:PORT of a Ray head") from None
    except OSError as err:
        raise ConfigError(
            f"ray_address {address}: no Ray head reachable ({err.strerror or err}); start one "
            "with `ray start --head` or check the address"
        ) from None


@dataclass
class RayCluster(_Returning):
    """Each run is a Ray task; every node needs costhill installed and the data where
    ``data_dir`` (or costhill's usual search) finds it on that node."""

    data_dir: str | None
    address: str
    task: Any = None

    @contextmanager
    def session(self) -> Iterator[None]:
        import ray

        ray.init(address=self.address, logging_level=logging.ERROR, log_to_driver=False)
        try:
            self.task = ray.remote(num_cpus=1)(train_elsewhere)
            yield
        finally:
            ray.shutdown()

    def submit(self, config: RunConfig) -> Any:
        return self.task.remote(config, self.data_dir)

    def finished(self, pending: list[Any]) -> list[Any]:
        import ray

        done, _ = ray.wait(pending, num_returns=1)
        return list(done)

    def result(self, handle: Any) -> Run:
        import ray

        return ray.get(handle)

    def cancel(self, pending: list[Any]) -> None:
        import ray

        for ref in pending:
            ray.cancel(ref, force=True)
