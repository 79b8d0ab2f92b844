"""One training loop for all descent regimes: full-batch, mini-batch and stochastic are batch sizes.

Each epoch is one compiled call: a ``lax.scan`` over the epoch's batches (plus one step for a last
partial batch), which records every step's cost on the device and hands them back once per epoch.
A cohort (``train_cohort``) is the same loop over several arms stacked along a leading axis and
``vmap``-ed; ``train`` is its one-arm case. This module writes no files and prints nothing;
``on_epoch`` callbacks do that for the caller.

    >>> from costhill import RunConfig, train
    >>> run = train(RunConfig(dataset="fashion-mnist-sample", epochs=1, batch_size=100))
    >>> run.status, len(run.all_step_costs())
    ('finished', 15)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..config import RunConfig
from ..data import Dataset, load_for
from ..errors import ConfigError
from ..initializers import Init, make_initializer, parse_init
from ..models import Model, make_model
from ..optimizers import check_hyperparameters, is_static, make_optimizer, parse_schedule
from ..records import (
    EpochCallback,
    EpochRecord,
    Run,
    Snapshot,
    TargetReached,
    TrainingState,
    flatten_params,
    unflatten_params,
)
from ..types import OptState, Params
from .cache import COMPILE_CACHE, epoch_key, model_key
from .cpu_tuning import (
    compile_lowered,
    describe_options,
    epoch_compiler_options,
    xla_threads_in_use,
)
from .memory import require_memory
from .process import prepare_process, versions
from .steps import epoch_order, make_epoch, make_evaluate, snapshot_plan

# Fields in which the arms of a cohort may differ; the last two only under a constant schedule
# (a schedule closes over its peak learning rate).
COHORT_FIELDS = ("seed", "init", "bias_init", "lr", "opt")
HYPERPARAMETER_FIELDS = ("lr", "opt")


def hyperparameters_in_state(config: RunConfig) -> bool:
    """Whether the engine carries ``config``'s learning rate and float hyperparameters in the
    optimizer state (``optax.inject_hyperparams``) rather than compiling them in as constants.

    It does under a constant schedule, so that one compiled epoch trains every learning rate of
    a sweep or a tuning study (a new rate costs no compilation) and a cohort's arms each hold their
    own. A schedule closes over its peak rate, and noisy_sgd over its seed's key, so those runs
    compile their values in. Each run records which (``versions["hyperparameters"]``), since its
    kept optimizer state has that layout.
    """
    return config.schedule == "constant" and config.optimizer != "noisy_sgd"


def check(config: RunConfig, *, custom_optimizer: bool = False) -> tuple[Model, Init, Init]:
    """Fail on any bad name or option in ``config`` before data is loaded or anything stored.

    Returns the model and the kernel and bias initializers the config names.
    """
    kernel_init = make_initializer(parse_init(config.init))
    bias_init = make_initializer(parse_init(config.bias_init, what="bias_init"), for_bias=True)
    model = make_model(config.model, hidden=config.hidden, activation=config.activation)
    if not custom_optimizer:
        check_hyperparameters(config.optimizer, dict(config.opt))
        if config.schedule != "constant":
            parse_schedule(config.schedule)
    return model, kernel_init, bias_init


def check_memory(configs: Sequence[RunConfig], data: Dataset) -> None:
    """Refuse ``configs`` (one run, or one cohort) if training them would not fit in memory:
    a sweep asks this of every group before it trains any (``engine.memory``)."""
    arms = _Arms(list(configs), vectorize=len(configs) > 1, keep_state=False)
    model = check(arms.first)[0]
    require_memory(arms.configs, model, data, _optimizer_for(arms, len(data.train)))


def cohort_signature(config: RunConfig) -> str:
    """What the arms of one cohort must share: everything but the fields they may differ in,
    and the names (not values) of the optimizer hyperparameters they set."""
    values = config.to_dict()
    free = COHORT_FIELDS if config.schedule == "constant" else ("seed", "init", "bias_init")
    rest = {k: v for k, v in values.items() if k not in free}
    rest["opt keys"] = sorted(values["opt"])
    rest["opt compiled in"] = {k: v for k, v in values["opt"].items() if is_static(v)}
    return json.dumps(rest, sort_keys=True)


def check_cohort(configs: Sequence[RunConfig]) -> None:
    """Fail unless ``configs`` may train as one cohort (see ``train_cohort``)."""
    if not configs:
        raise ConfigError("a cohort needs at least one config")
    base = configs[0]
    for i, other in enumerate(configs[1:], start=1):
        if cohort_signature(other) == cohort_signature(base):
            continue
        differ = [
            name
            for name in RunConfig.__dataclass_fields__
            if name not in COHORT_FIELDS and getattr(other, name) != getattr(base, name)
        ]
        if differ:
            raise ConfigError(
                f"cohort arm {i} differs from arm 0 in {', '.join(differ)}; arms may differ "
                f"only in {', '.join(COHORT_FIELDS)}"
            )
        if sorted(dict(other.opt)) != sorted(dict(base.opt)):
            raise ConfigError("cohort arms must set the same optimizer hyperparameters (opt keys)")
        if base.schedule == "constant":
            raise ConfigError(
                "cohort arms may differ only in float opt values; flags and integers are "
                "compiled into the program"
            )
        raise ConfigError(
            "cohort arms may differ in lr or opt values only under a constant "
            f"schedule, not {base.schedule!r}"
        )
    if base.optimizer == "noisy_sgd" and len(configs) > 1:
        raise ConfigError("noisy_sgd draws its noise from a per-run key: train its runs alone")


def train(
    config: RunConfig,
    *,
    data: Dataset | None = None,
    data_dir: str | None = None,
    optimizer: optax.GradientTransformation | None = None,
    on_epoch: EpochCallback | None = None,
    on_start: Callable[[Run], None] | None = None,
    keep_state: bool = False,
    resume: Run | None = None,
) -> Run:
    """Train ``config`` and return the run, with every step's cost and the final parameters.

    Args:
      config: what to train (see ``RunConfig``).
      data: an already loaded dataset; loaded from ``config.dataset`` when None.
      data_dir: where to look for the dataset's files first.
      optimizer: any Optax ``GradientTransformation``, used instead of ``config.optimizer``.
      on_epoch: called after each epoch with (run so far, epoch record, that epoch's step costs).
      on_start: called once, after the data is loaded and checked, before the first step.
      keep_state: keep ``run.state`` (parameters, optimizer state, epoch) after every epoch, so
        that an interrupted run can be continued.
      resume: an interrupted run of ``config`` with its ``state``: training continues from that
        epoch and appends to it, and ends with the numbers of a run never interrupted.

    Returns:
      The ``Run``; its ``status`` is ``diverged`` if a cost became NaN or infinite.
    """
    prepare_process([config])
    injected = None if resume is None else _injected_when_kept(resume)
    arms = _Arms([config], False, keep_state or resume is not None, injected=injected)
    return _train(arms, data, data_dir, optimizer, on_epoch, on_start, resume)[0]


def train_cohort(
    configs: list[RunConfig],
    *,
    data: Dataset | None = None,
    data_dir: str | None = None,
    on_epoch: EpochCallback | None = None,
    on_start: Callable[[Run], None] | None = None,
) -> list[Run]:
    """Train configs that differ only in seed, initializers and optimizer hyperparameter values
    (learning rate and float ``opt`` values, under a constant schedule) as one ``vmap``-ed
    program.

    Each arm keeps its own parameters, optimizer state (holding its hyperparameters) and data order
    (the order of its seed, so arms that share a seed see the same batches), and gives the same
    numbers, to float rounding, as ``train`` gives it alone. Training may amplify that rounding
    (Adam makes a step of a whole learning rate of a gradient near zero, whatever its last bits),
    so over many steps arms can drift apart as two machines' runs do. Every run records the cohort's
    wall-clock seconds and, in ``run.data["cohort_size"]``, how many arms shared them. Whether a
    cohort pays depends on the batch size and optimizer: see BENCHMARKS.md.

    Examples:
      >>> from costhill import RunConfig
      >>> base = RunConfig(dataset="fashion-mnist-sample", epochs=1, batch_size=100)
      >>> runs = train_cohort([base.replace(seed=s) for s in range(3)])
      >>> [r.config.seed for r in runs]
      [0, 1, 2]
    """
    check_cohort(configs)
    prepare_process(configs)
    return _train(_Arms(configs, vectorize=True), data, data_dir, None, on_epoch, on_start)


@dataclass(frozen=True)
class _Arms:
    """The one arm of ``train``, or a cohort's arms stacked along a leading axis.

    Every difference between the two lies here, so the loop below reads the same for both.
    """

    configs: Sequence[RunConfig]
    vectorize: bool
    keep_state: bool = False
    injected: bool | None = None  # a shed cohort's: its optimizer's, whatever its arms now hold

    @property
    def first(self) -> RunConfig:
        return self.configs[0]

    @property
    def inject(self) -> bool:
        """Whether the arms' hyperparameter values are carried in the optimizer state."""
        if self.injected is not None:
            return self.injected
        return hyperparameters_in_state(self.first)

    def only(self, positions: list[int]) -> _Arms:
        """These arms without the others, their optimizer unchanged."""
        configs = [self.configs[p] for p in positions]
        return _Arms(configs, self.vectorize, self.keep_state, injected=self.inject)

    def stack(self, trees: list[Any]) -> Any:
        if not self.vectorize:
            return trees[0]
        return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)

    def pick(self, tree: Any, i: int) -> Any:
        return jax.tree.map(lambda leaf: leaf[i], tree) if self.vectorize else tree

    def map(self, fn: Callable[..., Any], in_axes: tuple[int | None, ...]) -> Callable[..., Any]:
        return jax.vmap(fn, in_axes=in_axes) if self.vectorize else fn

    def per_arm(self, values: np.ndarray) -> np.ndarray:
        """Host values with the arms as the leading axis (one arm gets one added)."""
        return values if self.vectorize else values[None]

    def orders(self, num_train: int, epoch: int) -> np.ndarray:
        drawn = [epoch_order(num_train, seed=c.seed, epoch=epoch) for c in self.configs]
        return self.stack(drawn) if self.vectorize else drawn[0]


@dataclass(frozen=True)
class _Program:
    """The compiled epoch and evaluator of a run, and how they were made."""

    epoch: Callable[..., Any]
    evaluate: Callable[..., Any]
    compile_seconds: float
    engine: dict[str, str]


def _train(
    arms: _Arms,
    data: Dataset | None,
    data_dir: str | None,
    optimizer: optax.GradientTransformation | None,
    on_epoch: EpochCallback | None,
    on_start: Callable[[Run], None] | None,
    resume: Run | None = None,
) -> list[Run]:
    """The one training loop, read top to bottom: check, load, initialize, compile, train."""
    custom = optimizer is not None
    parts = [check(c, custom_optimizer=custom) for c in arms.configs]
    data = _checked_data(arms.first, data, data_dir)
    n = len(data.train)
    optimizer = optimizer or _optimizer_for(arms, n)
    require_memory(arms.configs, parts[0][0], data, optimizer)
    runs, params, opt_state, first_epoch, steps_done = _starting_point(
        arms, parts, optimizer, data, resume
    )
    train_x, train_y = jnp.asarray(data.train.images), jnp.asarray(data.train.labels)
    snapshots = _Snapshots(arms, n)
    program = _compile(
        arms, parts[0][0], optimizer, params, opt_state, (train_x, train_y), custom, snapshots
    )
    if resume is None:
        snapshots.take_initial(runs, params, program.evaluate, (train_x, train_y))
    _announce(runs, program, on_start)
    splits = _evaluation_splits(data, train_x, train_y)
    active = list(range(len(runs)))  # the run each arm of the program trains, in order
    for epoch in range(first_epoch, arms.first.epochs + 1):
        started = time.perf_counter()
        order = arms.orders(n, epoch)
        params, opt_state, costs, *marks = program.epoch(params, opt_state, train_x, train_y, order)
        all_costs = arms.per_arm(np.asarray(costs))  # waits for the epoch to finish
        seconds = time.perf_counter() - started
        measured, eval_seconds = _evaluate(program.evaluate, params, splits)
        for arm, i in enumerate(active):
            run = runs[i]
            record = _record_epoch(run, arm, epoch, steps_done, all_costs[arm], measured)
            record.seconds, record.eval_seconds = seconds, eval_seconds
            snapshots.take(run, arm, record, params, marks, program.evaluate, splits[0])
            run.state = _state(arms, arm, record, params, opt_state)
            _note_target(run, record, has_validation=len(data.validation) > 0)
            if on_epoch is not None:
                on_epoch(run, record, run.step_costs[-1])
        last = epoch == arms.first.epochs
        going = _keep_params_of_stopped(runs, active, arms, params, last=last)
        steps_done += all_costs.shape[1]
        if not going:
            break
        if len(going) < len(active):
            # A cohort sheds the arms that stopped (diverged, pruned, at target), so that they
            # cost nothing more: their slices of the state are dropped and the epoch is
            # compiled (or found in the cache) for the arms that go on.
            arms, params, opt_state = _shed(arms, going, params, opt_state)
            snapshots.arms = arms
            program = _compile(
                arms,
                parts[0][0],
                optimizer,
                params,
                opt_state,
                (train_x, train_y),
                custom,
                snapshots,
            )
            for arm in going:
                runs[active[arm]].compile_seconds += program.compile_seconds
        active = [active[arm] for arm in going]
    for run in runs:
        if run.status == "running":
            run.status = "finished"
    return runs


class _Snapshots:
    """Which parameter snapshots a run keeps (``snapshot_plan``), taken as its epochs end."""

    def __init__(self, arms: _Arms, num_train: int) -> None:
        config = arms.first
        self.arms = arms
        full_batches = num_train // config.effective_batch_size(num_train)
        self.segments, self.epochs = snapshot_plan(
            config.snapshots, epochs=config.epochs, full_batches=full_batches
        )
        self.segment_steps = full_batches // self.segments
        self._costs: dict[tuple[int, int], np.ndarray] = {}  # (epoch, segment): every arm's

    @property
    def wanted(self) -> bool:
        return bool(self.epochs)

    def _train_costs(self, evaluate: Callable[..., Any], params: Params, split: Any) -> np.ndarray:
        cost, _ = evaluate(params, split[-2], split[-1])
        return np.atleast_1d(np.asarray(cost))

    def take_initial(
        self, runs: list[Run], params: Params, evaluate: Callable[..., Any], split: Any
    ) -> None:
        if not self.wanted:
            return
        costs = self._train_costs(evaluate, params, split)
        for i, run in enumerate(runs):
            run.snapshots.append(_snapshot(0, 0, costs[i], self.arms.pick(params, i)))

    def take(
        self,
        run: Run,
        arm: int,
        record: EpochRecord,
        params: Params,
        marks: list[Any],
        evaluate: Callable[..., Any],
        split: Any,
    ) -> None:
        """The in-epoch snapshots (``marks``: the segments' end points) and the epoch's end."""
        if not self.wanted:
            return
        first_step = record.steps - len(run.step_costs[-1])
        for j in range(self.segments - 1):
            step = first_step + (j + 1) * self.segment_steps
            if run.diverged_step is not None and step >= run.diverged_step:
                return
            point = jax.tree.map(
                lambda leaf, j=j: leaf[:, j] if self.arms.vectorize else leaf[j], marks[0]
            )
            key = (record.epoch, j)
            if key not in self._costs:
                self._costs[key] = self._train_costs(evaluate, point, split)
            cost = self._costs[key][arm]
            run.snapshots.append(_snapshot(step, record.epoch, cost, self.arms.pick(point, arm)))
        if record.epoch in self.epochs and run.diverged_step is None:
            end = self.arms.pick(params, arm)
            run.snapshots.append(_snapshot(record.steps, record.epoch, record.train_cost, end))


def _snapshot(step: int, epoch: int, cost: Any, params: Params) -> Snapshot:
    value = float(cost)
    return Snapshot(step, epoch, value if np.isfinite(value) else None, flatten_params(params))


def _announce(runs: list[Run], program: _Program, on_start: Callable[[Run], None] | None) -> None:
    """Record how each run's program was made, and tell the caller it starts."""
    for run in runs:
        run.compile_seconds = program.compile_seconds
        run.versions.update(program.engine)
        if on_start is not None:
            on_start(run)


def _starting_point(
    arms: _Arms, parts: list[Any], optimizer: Any, data: Dataset, resume: Run | None
) -> tuple[list[Run], Params, OptState, int, int]:
    """Runs, parameters, optimizer state, first epoch and steps done: new ones, or those of
    the interrupted run to continue."""
    params = arms.stack(
        [_initial_params(c, *part) for c, part in zip(arms.configs, parts, strict=True)]
    )
    opt_state = _initial_opt_state(arms, optimizer, params)
    if resume is None:
        return _new_runs(arms, data), params, opt_state, 1, 0
    run = _resumed(resume, arms.first)
    params, opt_state = _restored(run, opt_state)
    first_epoch = run.epochs[-1].epoch + 1
    if first_epoch > arms.first.epochs or _should_stop(run):
        # It ended with its kept epoch (killed after that epoch was stored and before its end
        # was): nothing is left to train, and what it kept are its final parameters.
        run.params = flatten_params(params)
        first_epoch = arms.first.epochs + 1
    return [run], params, opt_state, first_epoch, run.epochs[-1].steps


def _state(
    arms: _Arms, arm: int, record: EpochRecord, params: Params, opt_state: OptState
) -> TrainingState | None:
    if not arms.keep_state:
        return None
    leaves = [np.asarray(_plain(leaf)) for leaf in jax.tree.leaves(arms.pick(opt_state, arm))]
    flat = flatten_params(arms.pick(params, arm))
    return TrainingState(record.epoch, record.steps, flat, leaves)


_IN_STATE = "in the optimizer state"
_COMPILED_IN = "compiled in"


def _injected_when_kept(run: Run) -> bool:
    """Whether ``run``'s kept optimizer state holds its hyperparameters: a run stored before
    the engine recorded this compiled them in."""
    return run.versions.get("hyperparameters", _COMPILED_IN) == _IN_STATE


def _is_key(leaf: Any) -> bool:
    return jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key)


def _plain(leaf: Any) -> Any:
    """A PRNG key (noisy_sgd's state holds one) as its raw data; any other leaf as it is."""
    return jax.random.key_data(leaf) if _is_key(leaf) else leaf


def _resumed(run: Run, config: RunConfig) -> Run:
    """The interrupted run, checked to be one that can go on under ``config``."""
    if run.config != config:
        raise ConfigError(f"resume: run {run.run_id} was trained with another config")
    if run.state is None or not run.epochs or run.state.epoch != run.epochs[-1].epoch:
        raise ConfigError(
            f"resume: run {run.run_id} has no state kept at its last epoch to continue from"
        )
    if run.status not in ("interrupted", "running"):
        raise ConfigError(
            f"resume: run {run.run_id} is {run.status}; only an interrupted run goes on"
        )
    run.status = "running"
    run.params = None
    return run


def _restored(run: Run, fresh_opt_state: OptState) -> tuple[Params, OptState]:
    """The run's parameters and optimizer state, as the engine holds them, from its state."""
    assert run.state is not None
    leaves, structure = jax.tree.flatten(fresh_opt_state)
    kept = run.state.optimizer_leaves
    if [a.shape for a in kept] != [np.shape(_plain(leaf)) for leaf in leaves]:
        raise ConfigError(f"resume: run {run.run_id}'s optimizer state does not fit its config")
    restored = [
        jax.random.wrap_key_data(jnp.asarray(a), impl=jax.random.key_impl(fresh))
        if _is_key(fresh)
        else jnp.asarray(a, dtype=jnp.asarray(fresh).dtype)
        for a, fresh in zip(kept, leaves, strict=True)
    ]
    opt_state = jax.tree.unflatten(structure, restored)
    params = jax.tree.map(jnp.asarray, unflatten_params(run.state.params))
    return params, opt_state


def _keep_params_of_stopped(
    runs: list[Run], active: list[int], arms: _Arms, params: Params, *, last: bool
) -> list[int]:
    """Keep the final parameters of each arm that stops now (every one, after the ``last``
    epoch); return the positions of the arms that go on."""
    going = []
    for arm, i in enumerate(active):
        if last or _should_stop(runs[i]):
            runs[i].params = flatten_params(arms.pick(params, arm))
        else:
            going.append(arm)
    return going


def _shed(
    arms: _Arms, going: list[int], params: Params, opt_state: OptState
) -> tuple[_Arms, Params, OptState]:
    """The cohort's arms at positions ``going``, with their parameters and optimizer state."""
    taken = jnp.asarray(going)
    kept = arms.only(going)
    return (
        kept,
        jax.tree.map(lambda leaf: leaf[taken], params),
        jax.tree.map(lambda leaf: leaf[taken], opt_state),
    )


def _checked_data(config: RunConfig, data: Dataset | None, data_dir: str | None) -> Dataset:
    if data is None:
        data = load_for(config, data_dir=data_dir)
    if data.name != config.dataset:
        raise ConfigError(f"data is {data.name!r} but the config names {config.dataset!r}")
    check_batch_size(config, data)
    return data


def check_batch_size(config: RunConfig, data: Dataset) -> None:
    """Refuse a batch larger than the training set (rather than quietly train full-batch)."""
    n = len(data.train)
    if config.batch_size != "full" and int(config.batch_size) > n:
        raise ConfigError(
            f"batch_size {config.batch_size}: larger than the {n:,} training examples of "
            f"{config.dataset} (with {len(data.validation):,} held out for validation); "
            "use batch_size full for full-batch descent"
        )


def _optimizer_for(arms: _Arms, num_train: int) -> optax.GradientTransformation:
    config = arms.first
    steps_per_epoch = config.steps_per_epoch(num_train)
    return make_optimizer(
        config.optimizer,
        config.lr,
        dict(config.opt),
        schedule=config.schedule,
        steps_per_epoch=steps_per_epoch,
        total_steps=steps_per_epoch * config.epochs,
        seed=config.seed,
        inject=arms.inject,
    )


def _new_runs(arms: _Arms, data: Dataset) -> list[Run]:
    n = len(data.train)
    described = data.describe()
    if arms.vectorize:
        described["cohort_size"] = len(arms.configs)
    stamp = versions()
    return [
        Run(
            config=c,
            status="running",
            regime=c.regime(n),
            batch_size=c.effective_batch_size(n),
            num_train=n,
            steps_per_epoch=c.steps_per_epoch(n),
            data=dict(described),
            versions=dict(stamp),
        )
        for c in arms.configs
    ]


def _initial_params(config: RunConfig, model: Model, kernel_init: Init, bias_init: Init) -> Params:
    """The model's initialization as one compiled call, reused by runs with the same specs.

    Run op by op, the initializers dispatch (and compile) dozens of small operations, a large
    share of a short run's time in a sweep (BENCHMARKS.md, "Engine choices").
    """
    init = COMPILE_CACHE.init(
        (*model_key(config), config.init, config.bias_init),
        lambda: jax.jit(lambda k: model.init(key=k, kernel_init=kernel_init, bias_init=bias_init)),
    )
    return init(jax.random.key(config.seed))


def _initial_opt_state(
    arms: _Arms, optimizer: optax.GradientTransformation, params: Params
) -> OptState:
    if not arms.vectorize:
        return optimizer.init(params)
    opt_state = jax.vmap(optimizer.init)(params)
    if not arms.inject:
        return opt_state
    configs = arms.configs
    values: dict[str, list[Any]] = {"learning_rate": [c.lr for c in configs]}
    values.update({k: [dict(c.opt)[k] for c in configs] for k in dict(arms.first.opt)})
    hyper = dict(opt_state.hyperparams)
    for key, per_arm in values.items():
        hyper[key] = jnp.asarray(per_arm, dtype=jnp.asarray(hyper[key]).dtype)
    return opt_state._replace(hyperparams=hyper)


def _compile(
    arms: _Arms,
    model: Model,
    optimizer: optax.GradientTransformation,
    params: Params,
    opt_state: OptState,
    train_split: tuple[jax.Array, jax.Array],
    custom: bool,
    snapshots: _Snapshots,
) -> _Program:
    """Compile the epoch (timed apart), or reuse an earlier run's compilation of this shape."""
    config = arms.first
    n = int(train_split[1].shape[0])
    batch_size = config.effective_batch_size(n)
    key = None  # a caller's own optimizer: no way to know it equals a cached one
    if not custom:
        key = epoch_key(
            arms.configs,
            num_train=n,
            batch_size=batch_size,
            total_steps=config.steps_per_epoch(n) * config.epochs,
            vectorize=arms.vectorize,
            inject=arms.inject,
            segments=snapshots.segments,
        )

    def build() -> tuple[Any, dict[str, Any]]:
        body = make_epoch(
            model,
            optimizer,
            num_examples=n,
            batch_size=batch_size,
            drop_last=config.drop_last,
            segments=snapshots.segments,
        )
        body = arms.map(body, (0, 0, None, None, 0))
        lowered = jax.jit(body).lower(params, opt_state, *train_split, arms.orders(n, 0))
        options = epoch_compiler_options(None if custom else config.optimizer, config.model)
        return compile_lowered(lowered, options)

    started = time.perf_counter()
    (epoch_fn, used_options), cached = COMPILE_CACHE.epoch(key, build)
    compile_seconds = 0.0 if cached else time.perf_counter() - started
    evaluate = COMPILE_CACHE.evaluator(
        (*model_key(config), arms.vectorize),
        lambda: jax.jit(arms.map(make_evaluate(model), (0, None, None))),
    )
    engine = {
        "xla_options": describe_options(used_options),
        "xla_cpu_threads": str(xla_threads_in_use() or "unknown"),
        "hyperparameters": _IN_STATE if arms.inject and not custom else _COMPILED_IN,
    }
    return _Program(epoch_fn, evaluate, compile_seconds, engine)


def _evaluation_splits(
    data: Dataset, train_x: jax.Array, train_y: jax.Array
) -> list[tuple[str, jax.Array, jax.Array]]:
    splits = [("train", train_x, train_y)]
    if len(data.validation):
        val = data.validation
        splits.append(("val", jnp.asarray(val.images), jnp.asarray(val.labels)))
    splits.append(("test", jnp.asarray(data.test.images), jnp.asarray(data.test.labels)))
    return splits


def _evaluate(
    evaluate: Callable[..., Any], params: Params, splits: list[tuple[str, Any, Any]]
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], float]:
    """Cost and accuracy of every arm on every split, and the seconds that took."""
    started = time.perf_counter()
    measured = {}
    for name, x, y in splits:
        cost, accuracy = evaluate(params, x, y)
        measured[name] = (np.atleast_1d(np.asarray(cost)), np.atleast_1d(np.asarray(accuracy)))
    return measured, time.perf_counter() - started


def _record_epoch(
    run: Run,
    arm: int,
    epoch: int,
    steps_done: int,
    costs: np.ndarray,
    measured: dict[str, tuple[np.ndarray, np.ndarray]],
) -> EpochRecord:
    """Append one epoch to ``run``: its step costs (up to a divergence) and its metrics."""
    bad = np.flatnonzero(~np.isfinite(costs))
    if bad.size:
        costs = costs[: bad[0] + 1]
        run.diverged_step = steps_done + int(bad[0]) + 1
        run.status = "diverged"
    metrics: dict[str, float | None] = {"val_cost": None, "val_accuracy": None}
    for name, (cost_values, accuracy_values) in measured.items():
        metrics[f"{name}_cost"] = float(cost_values[arm])
        metrics[f"{name}_accuracy"] = float(accuracy_values[arm])
    record = EpochRecord(
        epoch=epoch,
        steps=steps_done + len(costs),
        mean_step_cost=float(np.mean(costs)),
        seconds=0.0,
        eval_seconds=0.0,
        **metrics,  # type: ignore[arg-type]
    )
    run.epochs.append(record)
    run.step_costs.append(costs)
    return record


def _note_target(run: Run, record: EpochRecord, *, has_validation: bool) -> None:
    target = run.config.target_accuracy
    reached = record.val_accuracy if has_validation else record.test_accuracy
    if target is not None and run.target is None and (reached or 0.0) >= target:
        split = "validation" if has_validation else "test"
        run.target = TargetReached(target, split, record.epoch, record.steps, run.train_seconds)


def _should_stop(run: Run) -> bool:
    """Whether ``run`` ends with this epoch: it diverged, reached its target (if it stops there),
    ran out of time, or its caller's ``on_epoch`` marked it ``pruned`` (a tuning sweep)."""
    config = run.config
    out_of_time = config.max_seconds is not None and run.train_seconds >= config.max_seconds
    reached = config.stop_at_target and run.target is not None
    pruned = run.status == "pruned"
    return run.diverged_step is not None or reached or out_of_time or pruned
