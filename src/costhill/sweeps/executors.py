"""Where a sweep's runs train: in this process, in local worker processes, or on a Ray cluster.

Each is an executor with one method, ``execute(todo, store, report, hooks)``. Whatever trains
where, only the driver process writes the store: runs trained in this process are written epoch
by epoch; runs trained elsewhere come back whole and are stored when they end.

Worker processes and Ray also take ``Task``s (``execute_tasks``): runs that train as one cohort
in one worker and may ask the driver questions as they train, each answered here at once. A
tuning sweep's pruner judges runs trained elsewhere so (``tuning``): the questions are its
trial's reports and "should it stop?", and the driver alone asks its study.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import signal
import socket
import threading
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
    replayed: int = 0  # tuning trials told their epochs from runs the store already held
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
            with store.together():
                for run in runs:
                    store.finish(run)
                    store.release(run.config.config_hash())
            for (position, _), run in zip(group, runs, strict=True):
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

# How long the driver waits for a task to finish before it looks again for questions to answer.
_QUESTION_POLL_SECONDS = 0.01


class Channel(ABC):
    """A task's line to the driver, from the worker it trains in."""

    @abstractmethod
    def ask(self, question: Any) -> Any:
        """Send ``question`` to the driver and wait for its answer."""


@dataclass(frozen=True)
class Task:
    """Runs that train together in one worker, as one cohort.

    ``train(configs, data, ask, *args)`` trains them there and returns their runs, in order
    (a module-level function, so that it pickles); ``ask(question)`` returns what
    ``answer(question)`` gives in the driver. Without ``train``, each config trains alone and
    nothing is asked.
    """

    items: Todo
    train: Callable[..., list[Run]] | None = None
    args: tuple[Any, ...] = ()
    answer: Callable[[Any], Any] | None = None


def train_elsewhere(
    configs: list[RunConfig],
    data_dir: str | None,
    train_task: Callable[..., list[Run]] | None = None,
    args: tuple[Any, ...] = (),
    channel: Channel | None = None,
) -> list[Run]:
    """Train a task's configs in a worker process or Ray task (each loads each dataset once)."""
    data_for = _WORKER_DATA.setdefault(data_dir, DataCache(data_dir))
    data = data_for(configs[0])
    if train_task is None:
        return [train(config, data=data) for config in configs]
    if channel is None:
        raise ValueError("a task that trains itself needs a channel to the driver")
    return train_task(configs, data, channel.ask, *args)


class Returning(AbstractExecutor):
    """Runs that train in other processes and come back whole, to be stored here."""

    data_dir: str | None

    @contextmanager
    @abstractmethod
    def session(self) -> Iterator[None]: ...

    @abstractmethod
    def submit(self, task: Task, key: int) -> Any:
        """Start ``task``; its questions, if it asks any, come back under ``key``."""

    @abstractmethod
    def questions(self) -> list[tuple[int, Any]]:
        """The (key, question) pairs asked since the last call, without waiting."""

    @abstractmethod
    def reply(self, key: int, answer: Any) -> None: ...

    @abstractmethod
    def finished(self, pending: list[Any], timeout: float | None) -> list[Any]:
        """Wait until at least one of ``pending`` has finished, or ``timeout`` seconds have
        passed; return those that have."""

    @abstractmethod
    def result(self, handle: Any) -> list[Run]: ...

    @abstractmethod
    def cancel(self, pending: list[Any]) -> None: ...

    def execute(self, todo: Todo, store: Store, report: SweepReport, hooks: Hooks) -> None:
        self.execute_tasks([Task([item]) for item in todo], store, report, hooks)

    def execute_tasks(
        self, tasks: list[Task], store: Store, report: SweepReport, hooks: Hooks
    ) -> None:
        """Train every task whose runs this process can claim, answering their questions as
        they come and storing each run when its task comes back."""
        with self.session():
            pending: dict[Any, Task] = {}
            answers: dict[int, Callable[[Any], Any]] = {}
            for key, task in enumerate(tasks):
                items = claimed(task.items, store, report, hooks)
                if not items:
                    continue
                for position, config in items:
                    hooks.start(position, config)
                if task.answer is not None:
                    answers[key] = task.answer
                submitted = dataclasses.replace(task, items=items)
                pending[self.submit(submitted, key)] = submitted
            try:
                while pending:
                    for key, question in self.questions() if answers else ():
                        self.reply(key, answers[key](question))
                    wait = _QUESTION_POLL_SECONDS if answers else None
                    for handle in self.finished(list(pending), wait):
                        task = pending.pop(handle)
                        self._store(task, self.result(handle), store, report, hooks)
            except KeyboardInterrupt:
                self.cancel(list(pending))
                raise

    @staticmethod
    def _store(
        task: Task, runs: list[Run], store: Store, report: SweepReport, hooks: Hooks
    ) -> None:
        with store.together():  # a cohort's runs, all or none
            for run in runs:
                run.run_id = None
                store.save(run)
                store.release(run.config.config_hash())
        for (position, _), run in zip(task.items, runs, strict=True):
            _count_trained(run, report)
            report.training_seconds += run.compile_seconds + sum(
                e.seconds + e.eval_seconds for e in run.epochs
            )
            hooks.end(position, run)


@dataclass
class _WorkerQueues:
    """A worker process's line to the driver: questions on the queue every worker shares,
    answers on the worker's own (it trains one task at a time)."""

    asked: Any
    answers: Any
    slot: int


_QUEUES: _WorkerQueues | None = None  # this worker process's, set as it starts


def _start_worker(asked: Any, answers: list[Any], slots: Any) -> None:
    global _QUEUES
    slot = slots.get()
    _QUEUES = _WorkerQueues(asked, answers[slot], slot)
    # A Ctrl-C reaches a terminal's whole process group; the driver alone answers it (cancel),
    # so that a worker prints no traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_the_driver, daemon=True, name="driver-watch").start()


def _exit_with_the_driver() -> None:
    """End this worker as soon as its driver ends: a driver killed outright (SIGKILL, SIGTERM)
    leaves no one to store what the worker trains, and a pool's idle worker would otherwise
    wait for work for good."""
    import multiprocessing
    from multiprocessing.connection import wait

    parent = multiprocessing.parent_process()
    if parent is not None:
        wait([parent.sentinel])
        os._exit(1)


@dataclass(frozen=True)
class _ProcessChannel(Channel):
    key: int

    def ask(self, question: Any) -> Any:
        if _QUEUES is None:
            raise RuntimeError("not in a sweep's worker process")
        _QUEUES.asked.put((_QUEUES.slot, self.key, question))
        return _QUEUES.answers.get()  # a driver that ends ends this process too


@dataclass
class WorkerProcesses(Returning):
    """Train in ``workers`` local processes (started with spawn: a forked JAX is not safe)."""

    data_dir: str | None
    workers: int
    pool: Any = None
    asked: Any = None
    answers: list[Any] = field(default_factory=list)
    slot_of: dict[int, int] = field(default_factory=dict)  # task key -> the worker it asks from
    others: set[int | None] = field(default_factory=set)  # children not of this pool

    @contextmanager
    def session(self) -> Iterator[None]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("spawn")
        self.asked = context.Queue()
        self.answers = [context.Queue() for _ in range(self.workers)]
        slots = context.Queue()
        for slot in range(self.workers):
            slots.put(slot)
        self.others = {child.pid for child in multiprocessing.active_children()}
        with ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=context,
            initializer=_start_worker,
            initargs=(self.asked, self.answers, slots),
        ) as self.pool:
            yield

    def submit(self, task: Task, key: int) -> Any:
        channel = None if task.answer is None else _ProcessChannel(key)
        configs = [config for _, config in task.items]
        return self.pool.submit(
            train_elsewhere, configs, self.data_dir, task.train, task.args, channel
        )

    def questions(self) -> list[tuple[int, Any]]:
        asked: list[tuple[int, Any]] = []
        while True:
            try:
                slot, key, question = self.asked.get_nowait()
            except queue.Empty:
                return asked
            self.slot_of[key] = slot
            asked.append((key, question))

    def reply(self, key: int, answer: Any) -> None:
        self.answers[self.slot_of[key]].put(answer)

    def finished(self, pending: list[Any], timeout: float | None) -> list[Any]:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
        return list(done)

    def result(self, handle: Any) -> list[Run]:
        return list(handle.result())

    def cancel(self, pending: list[Any]) -> None:
        import multiprocessing

        # A run comes back whole or not at all, so those in flight are lost either way: stop
        # them now rather than wait for them (the pool would, at exit) or leave them waiting
        # for answers. The pool, broken so, fails what is queued and shuts down before this
        # process begins to exit (a pool still shutting down then may write to closed pipes).
        workers = [c for c in multiprocessing.active_children() if c.pid not in self.others]
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.join(timeout=5)
        self.pool.shutdown(wait=True, cancel_futures=True)


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


class RayExchange:
    """A Ray actor through which tasks ask the driver questions and wait for its answers: a
    task's ``ask`` awaits, so the actor serves every task at once."""

    def __init__(self) -> None:
        self._asked: list[tuple[int, Any]] = []
        self._answers: dict[int, Any] = {}

    async def ask(self, key: int, question: Any) -> Any:
        import asyncio

        answer = asyncio.get_running_loop().create_future()
        self._answers[key] = answer
        self._asked.append((key, question))
        return await answer

    async def questions(self) -> list[tuple[int, Any]]:
        asked, self._asked = self._asked, []
        return asked

    async def reply(self, key: int, answer: Any) -> None:
        self._answers.pop(key).set_result(answer)


@dataclass
class _RayChannel(Channel):
    exchange: Any  # a RayExchange actor's handle
    key: int

    def ask(self, question: Any) -> Any:
        import ray

        return ray.get(self.exchange.ask.remote(self.key, question))


@dataclass
class RayCluster(Returning):
    """Each task is a Ray task; every node needs costhill installed and the data where
    ``data_dir`` (or costhill's usual search) finds it on that node."""

    data_dir: str | None
    address: str
    task: Any = None
    exchange: Any = None

    @contextmanager
    def session(self) -> Iterator[None]:
        import ray

        ray.init(address=self.address, logging_level=logging.ERROR, log_to_driver=False)
        try:
            self.task = ray.remote(num_cpus=1)(train_elsewhere)
            yield
        finally:
            self.exchange = None
            ray.shutdown()

    def submit(self, task: Task, key: int) -> Any:
        channel = None
        if task.answer is not None:
            if self.exchange is None:
                import ray

                # No CPU of its own: it only waits, and must not take a slot a run could use.
                self.exchange = ray.remote(num_cpus=0)(RayExchange).remote()
            channel = _RayChannel(self.exchange, key)
        configs = [config for _, config in task.items]
        return self.task.remote(configs, self.data_dir, task.train, task.args, channel)

    def questions(self) -> list[tuple[int, Any]]:
        import ray

        return [] if self.exchange is None else list(ray.get(self.exchange.questions.remote()))

    def reply(self, key: int, answer: Any) -> None:
        import ray

        ray.get(self.exchange.reply.remote(key, answer))

    def finished(self, pending: list[Any], timeout: float | None) -> list[Any]:
        import ray

        done, _ = ray.wait(pending, num_returns=1, timeout=timeout)
        return list(done)

    def result(self, handle: Any) -> list[Run]:
        import ray

        return list(ray.get(handle))

    def cancel(self, pending: list[Any]) -> None:
        import ray

        for ref in pending:
            ray.cancel(ref, force=True)
