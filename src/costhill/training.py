"""One training loop for all descent regimes: full-batch, mini-batch and stochastic are batch sizes.

Each epoch is one compiled call: a ``lax.scan`` over the epoch's batches (plus one step for a last
partial batch), which records every step's cost on the device and hands them back once per epoch.
This module writes no files and prints nothing; ``on_epoch`` callbacks do that for the caller.

    >>> from costhill import RunConfig, train
    >>> run = train(RunConfig(dataset="fashion-mnist-sample", epochs=1, batch_size=100))
    >>> run.status, len(run.step_costs)
    ('finished', 15)
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int

from . import __version__
from ._types import Key, OptState, Params
from .config import RunConfig
from .cpu_tuning import (
    compile_lowered,
    describe_options,
    epoch_compiler_options,
    xla_threads_in_use,
)
from .data import Dataset, Split, load
from .errors import ConfigError
from .initializers import make_initializer, parse_init
from .models import Model, batched_logits, make_model
from .optimizers import check_hyperparameters, make_optimizer, parse_schedule


@dataclass
class EpochRecord:
    """Metrics at the end of one epoch (costs are mean cross-entropy; None: split is empty)."""

    epoch: int
    steps: int  # steps taken since the start of the run
    mean_step_cost: float
    train_cost: float
    train_accuracy: float
    val_cost: float | None
    val_accuracy: float | None
    test_cost: float
    test_accuracy: float
    seconds: float  # training time of this epoch, compilation and evaluation excluded
    eval_seconds: float


@dataclass
class TargetReached:
    accuracy: float
    split: str  # "validation", or "test" when the run holds out no validation set
    epoch: int
    step: int
    seconds: float  # cumulative training seconds when it was first reached


@dataclass
class Run:
    """A training run: its config, every cost it recorded, and its final parameters."""

    config: RunConfig
    status: str  # "finished", "diverged", "interrupted" or "running"
    regime: str
    batch_size: int
    num_train: int
    steps_per_epoch: int
    epochs: list[EpochRecord] = field(default_factory=list)
    step_costs: list[np.ndarray] = field(default_factory=list)  # one float32 array per epoch
    params: dict[str, np.ndarray] | None = None  # "/"-joined pytree path -> array
    compile_seconds: float = 0.0
    diverged_step: int | None = None
    target: TargetReached | None = None
    data: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    run_id: int | None = None
    created_at: str | None = None

    @property
    def steps(self) -> int:
        return int(sum(len(c) for c in self.step_costs))

    @property
    def train_seconds(self) -> float:
        return float(sum(e.seconds for e in self.epochs))

    def all_step_costs(self) -> np.ndarray:
        if not self.step_costs:
            return np.zeros(0, np.float32)
        return np.concatenate(self.step_costs)

    def best_validation(self) -> tuple[float | None, float | None]:
        """The best validation accuracy, and the test accuracy at that epoch: a choice made on
        validation, with test only reported (None, None without a validation split)."""
        scored = [e for e in self.epochs if e.val_accuracy is not None]
        if not scored:
            return None, None
        best = max(scored, key=lambda e: e.val_accuracy or 0.0)
        return best.val_accuracy, best.test_accuracy

    def summary(self) -> dict[str, Any]:
        """The flat record the CLI prints with ``--json`` and the store indexes."""
        last = self.epochs[-1] if self.epochs else None
        best_val, test_at_best_val = self.best_validation()
        return {
            "run_id": self.run_id,
            "status": self.status,
            "regime": self.regime,
            "epochs": len(self.epochs),
            "steps": self.steps,
            "seconds": round(self.train_seconds, 4),
            "compile_seconds": round(self.compile_seconds, 4),
            "train_accuracy": last.train_accuracy if last else None,
            "val_accuracy": last.val_accuracy if last else None,
            "test_accuracy": last.test_accuracy if last else None,
            "train_cost": last.train_cost if last else None,
            "test_cost": last.test_cost if last else None,
            "best_val_accuracy": best_val,
            "test_at_best_val": test_at_best_val,
            "diverged_step": self.diverged_step,
            "target_reached": None if self.target is None else vars(self.target),
        }


EpochCallback = Callable[[Run, EpochRecord, np.ndarray], None]


def versions() -> dict[str, str]:
    import jaxlib

    return {
        "costhill": __version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(jax.devices()[0].device_kind),
    }


def cross_entropy(
    model: Model, params: Params, images: Float[Array, "b 28 28"], labels: Int[Array, " b"]
) -> Float[Array, ""]:
    logits = batched_logits(model, params, images)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def epoch_order(num_examples: int, *, seed: int, epoch: int) -> np.ndarray:
    """The order in which epoch ``epoch`` of a run seeded ``seed`` visits the training examples.

    Drawn on the host with NumPy (about 1 ms for 60,000) rather than on the device: XLA's CPU
    sort made ``jax.random.permutation`` cost ~20 ms an epoch, 6% of a mini-batch epoch. It depends
    on the seed and epoch alone, so runs that share a seed see the same batches whatever their
    initializer or optimizer.
    """
    return np.random.default_rng([seed, epoch]).permutation(num_examples).astype(np.int32)


def split_batches(
    order: Int[Array, " n"] | np.ndarray, batch_size: int, *, drop_last: bool = False
) -> tuple[Any, Any]:
    """Cut an epoch's order into full batches and the last partial batch.

    The partial batch is empty when ``batch_size`` divides the epoch or when ``drop_last`` is set.
    Works on NumPy arrays and, inside the compiled epoch, on JAX arrays alike.
    """
    full = order.shape[0] // batch_size
    head = order[: full * batch_size].reshape(full, batch_size)
    tail = order[full * batch_size :] if not drop_last else order[:0]
    return head, tail


def make_epoch(
    model: Model,
    optimizer: optax.GradientTransformation,
    *,
    num_examples: int,
    batch_size: int,
    drop_last: bool,
) -> Any:
    """A function that trains one epoch and returns (params, opt_state, step_costs); jit it, or
    vmap it over arms first (``train_cohort``)."""

    def make_step(
        images: Float[Array, "n 28 28"], labels: Int[Array, " n"]
    ) -> Callable[[tuple[Params, OptState], Int[Array, " b"] | slice], Any]:
        def step(carry: tuple[Params, OptState], idx: Int[Array, " b"] | slice):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(
                lambda p: cross_entropy(model, p, images[idx], labels[idx])
            )(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        return step

    # Tiny steps are dominated by the loop's own overhead; unrolling 4 steps per iteration cut a
    # batch-1 epoch by ~15-30% here, and changed nothing measurable for batch 64 (bench/).
    unroll = 4 if batch_size < 16 else 1

    def epoch(params: Params, opt_state: OptState, images, labels, order: Int[Array, " n"]):
        step = make_step(images, labels)
        if batch_size == num_examples:
            # Full-batch descent: the mean gradient does not depend on the order, so the data is
            # used in place instead of copied through a permutation (the epoch's only step).
            (params, opt_state), cost = step((params, opt_state), slice(None))
            return params, opt_state, cost[None]
        head, tail = split_batches(order, batch_size, drop_last=drop_last)
        (params, opt_state), costs = jax.lax.scan(step, (params, opt_state), head, unroll=unroll)
        if tail.shape[0]:
            (params, opt_state), last = step((params, opt_state), tail)
            costs = jnp.concatenate([costs, last[None]])
        return params, opt_state, costs

    return epoch


def _evaluate_fn(model: Model) -> Callable[..., tuple[Array, Array]]:
    def evaluate(params: Params, images: Float[Array, "n 28 28"], labels: Int[Array, " n"]):
        n, size = labels.shape[0], model.eval_chunk
        chunks = max(math.ceil(n / size), 1)
        pad = chunks * size - n
        images = jnp.pad(images, ((0, pad), (0, 0), (0, 0))).reshape(chunks, size, 28, 28)
        labels = jnp.pad(labels, (0, pad)).reshape(chunks, size)
        mask = (jnp.arange(chunks * size) < n).reshape(chunks, size)

        def chunk_stats(args):
            x, y, m = args
            logits = batched_logits(model, params, x)
            losses = optax.softmax_cross_entropy_with_integer_labels(logits, y)
            correct = jnp.argmax(logits, axis=-1) == y
            return jnp.sum(losses * m), jnp.sum(correct * m)

        losses, correct = jax.lax.map(chunk_stats, (images, labels, mask))
        return losses.sum() / n, correct.sum() / n

    return evaluate


# Compiled epochs and evaluators, reused by later runs of the same shape so that a second run
# (another seed or initializer) compiles nothing. Keyed by everything the compiled code closes over.
_EPOCH_CACHE: dict[tuple[Any, ...], Any] = {}
_EVAL_CACHE: dict[tuple[Any, ...], Callable[..., tuple[Array, Array]]] = {}
COMPILATIONS = {"epoch": 0}


def _model_key(cfg: RunConfig) -> tuple[Any, ...]:
    return (cfg.model, cfg.hidden, cfg.activation)


_INIT_CACHE: dict[tuple[Any, ...], Callable[[Key], Params]] = {}


def _compiled_init(cfg: RunConfig, model: Model, kernel_init: Any, bias_init: Any):
    """The model's initialization as one compiled call, reused by runs with the same specs.

    Run op by op, the initializers dispatch (and compile) dozens of small operations: ~0.4 s a
    run, a third of a short run's time in a sweep.
    """
    key = (*_model_key(cfg), cfg.init, cfg.bias_init)
    if key not in _INIT_CACHE:
        _INIT_CACHE[key] = jax.jit(
            lambda k: model.init(key=k, kernel_init=kernel_init, bias_init=bias_init)
        )
    return _INIT_CACHE[key]


def _to_numpy_tree(params: Params) -> dict[str, np.ndarray]:
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    return {
        "/".join(str(getattr(k, "key", k)) for k in path): np.asarray(leaf) for path, leaf in flat
    }


def params_from_flat(flat: dict[str, np.ndarray]) -> Params:
    """Rebuild the nested parameter dict from ``"/"``-joined paths."""
    tree: dict[str, Any] = {}
    for path, leaf in flat.items():
        node = tree
        *parents, last = path.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = jnp.asarray(leaf)
    return tree


def _split_arrays(split: Split) -> tuple[Array, Array]:
    return jnp.asarray(split.images), jnp.asarray(split.labels)


def check(config: RunConfig, *, custom_optimizer: bool = False) -> tuple[Model, Any, Any]:
    """Fail on any bad name or option in ``config`` before data is loaded or anything stored.

    Returns the model and the kernel and bias initializers the config names.
    """
    kernel_init = make_initializer(parse_init(config.init))
    bias_init = make_initializer(parse_init(config.bias_init, what="--bias-init"), for_bias=True)
    model = make_model(config.model, hidden=config.hidden, activation=config.activation)
    if not custom_optimizer:
        check_hyperparameters(config.optimizer, dict(config.opt))
        if config.schedule != "constant":
            parse_schedule(config.schedule)
    return model, kernel_init, bias_init


def train(
    config: RunConfig,
    *,
    data: Dataset | None = None,
    data_dir: str | None = None,
    optimizer: optax.GradientTransformation | None = None,
    on_epoch: EpochCallback | None = None,
    on_start: Callable[[Run], None] | None = None,
) -> Run:
    """Train ``config`` and return the run, with every step's cost and the final parameters.

    Args:
      config: what to train (see ``RunConfig``).
      data: an already loaded dataset; loaded from ``config.dataset`` when None.
      data_dir: where to look for the dataset's files first.
      optimizer: any Optax ``GradientTransformation``, used instead of ``config.optimizer``.
      on_epoch: called after each epoch with (run so far, epoch record, that epoch's step costs).
      on_start: called once, after the data is loaded and checked, before the first step.

    Returns:
      The ``Run``; its ``status`` is ``diverged`` if a cost became NaN or infinite.
    """
    return _train_arms(
        [config],
        data=data,
        data_dir=data_dir,
        optimizer=optimizer,
        on_epoch=on_epoch,
        on_start=on_start,
        vectorize=False,
    )[0]


COHORT_FIELDS = ("seed", "init", "bias_init", "lr", "opt")
HYPERPARAMETER_FIELDS = ("lr", "opt")  # may differ in a cohort only under a constant schedule


def train_cohort(
    configs: list[RunConfig],
    *,
    data: Dataset | None = None,
    data_dir: str | None = None,
    on_epoch: EpochCallback | None = None,
    on_start: Callable[[Run], None] | None = None,
) -> list[Run]:
    """Train configs that differ only in seed, initializers and optimizer hyperparameter values
    (learning rate and ``opt`` values, under a constant schedule) as one ``vmap``-ed program.

    Each arm keeps its own parameters, optimizer state (holding its hyperparameters) and data order
    (the order of its seed, so arms that share a seed see the same batches), and gives the same
    numbers, to float rounding, as ``train`` gives it alone. Every run records the cohort's
    wall-clock seconds and, in ``run.data["cohort_size"]``, how many arms shared them. Whether a
    cohort pays depends on the batch size and optimizer: see BENCHMARKS.md.

    Examples:
      >>> from costhill import RunConfig
      >>> base = RunConfig(dataset="fashion-mnist-sample", epochs=1, batch_size=100)
      >>> runs = train_cohort([base.replace(seed=s) for s in range(3)])
      >>> [r.config.seed for r in runs]
      [0, 1, 2]
    """
    if not configs:
        raise ConfigError("a cohort needs at least one config")
    base = configs[0]
    for i, other in enumerate(configs[1:], start=1):
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
    keys = {tuple(sorted(dict(c.opt))) for c in configs}
    if len(keys) > 1:
        raise ConfigError("cohort arms must set the same optimizer hyperparameters (opt keys)")
    varies = any((c.lr, c.opt) != (base.lr, base.opt) for c in configs)
    if varies and base.schedule != "constant":
        raise ConfigError(
            "cohort arms may differ in lr or opt values only under a constant "
            f"schedule, not {base.schedule!r}"
        )
    if base.optimizer == "noisy_sgd" and len(configs) > 1:
        raise ConfigError("noisy_sgd draws its noise from a per-run key: train its runs alone")
    return _train_arms(
        configs,
        data=data,
        data_dir=data_dir,
        optimizer=None,
        on_epoch=on_epoch,
        on_start=on_start,
        vectorize=True,
    )


def _arm(tree: Any, i: int) -> Any:
    return jax.tree.map(lambda leaf: leaf[i], tree)


def _train_arms(
    configs: list[RunConfig],
    *,
    data: Dataset | None,
    data_dir: str | None,
    optimizer: optax.GradientTransformation | None,
    on_epoch: EpochCallback | None,
    on_start: Callable[[Run], None] | None,
    vectorize: bool,
) -> list[Run]:
    """The one training loop. Without ``vectorize`` there is exactly one arm and no vmap."""
    config = configs[0]
    # 1. Validate everything that can be validated before any data moves.
    custom = optimizer is not None
    checked = [check(c, custom_optimizer=custom) for c in configs]
    model = checked[0][0]

    # 2. Data: loaded once, put on the device once.
    if data is None:
        data = load(
            config.dataset,
            data_dir=data_dir,
            validation=config.validation,
            split_seed=config.split_seed,
        )
    elif data.name != config.dataset:
        raise ConfigError(f"data is {data.name!r} but the config names {config.dataset!r}")
    n = len(data.train)
    batch_size = config.effective_batch_size(n)
    steps_per_epoch = n // batch_size + (0 if config.drop_last or n % batch_size == 0 else 1)
    total_steps = steps_per_epoch * config.epochs
    # A cohort whose arms differ in hyperparameter values carries them in the optimizer state.
    inject = vectorize and any((c.lr, c.opt) != (config.lr, config.opt) for c in configs)
    if optimizer is None:
        optimizer = make_optimizer(
            config.optimizer,
            config.lr,
            dict(config.opt),
            schedule=config.schedule,
            steps_per_epoch=steps_per_epoch,
            total_steps=total_steps,
            seed=config.seed,
            inject=inject,
        )
        cache_key: tuple[Any, ...] | None = (
            _model_key(config),
            config.optimizer,
            config.lr,
            config.opt,
            config.schedule,
            total_steps if config.schedule != "constant" else 0,
            config.seed if config.optimizer == "noisy_sgd" else 0,
            n,
            batch_size,
            config.drop_last,
            len(configs) if vectorize else 0,
            tuple((c.lr, c.opt) for c in configs) if inject else (),
        )
    else:
        cache_key = None  # a caller's own optimizer: no way to know it equals a cached one
    train_x, train_y = _split_arrays(data.train)
    evaluations = [("train", train_x, train_y), ("test", *_split_arrays(data.test))]
    if len(data.validation):
        evaluations.insert(1, ("val", *_split_arrays(data.validation)))
    target_split = "validation" if len(data.validation) else "test"
    described = data.describe()
    if vectorize:
        described["cohort_size"] = len(configs)
    stamp = versions()
    runs = [
        Run(
            config=c,
            status="running",
            regime=c.regime(n),
            batch_size=batch_size,
            num_train=n,
            steps_per_epoch=steps_per_epoch,
            data=described,
            versions=dict(stamp),
        )
        for c in configs
    ]

    # 3. Parameters and optimizer state (the data order is drawn per epoch by epoch_order).
    arm_params = [
        _compiled_init(c, model, kernel_init, bias_init)(jax.random.key(c.seed))
        for c, (_, kernel_init, bias_init) in zip(configs, checked, strict=True)
    ]
    if vectorize:
        params = jax.tree.map(lambda *leaves: jnp.stack(leaves), *arm_params)
        opt_state = jax.vmap(optimizer.init)(params)
        if inject:
            values: dict[str, list[Any]] = {"learning_rate": [c.lr for c in configs]}
            values.update({k: [dict(c.opt)[k] for c in configs] for k in dict(config.opt)})
            hyper = dict(opt_state.hyperparams)
            for key, per_arm in values.items():
                hyper[key] = jnp.asarray(per_arm, dtype=jnp.asarray(hyper[key]).dtype)
            opt_state = opt_state._replace(hyperparams=hyper)
    else:
        params = arm_params[0]
        opt_state = optimizer.init(params)

    def orders(epoch: int) -> np.ndarray:
        drawn = [epoch_order(n, seed=c.seed, epoch=epoch) for c in configs]
        return np.stack(drawn) if vectorize else drawn[0]

    # 4. Compile once (timed apart), or reuse the compilation of an earlier run of this shape.
    cached = _EPOCH_CACHE.get(cache_key) if cache_key is not None else None
    compile_seconds = 0.0
    if cached is not None:
        epoch_fn, used_options = cached
    else:
        started = time.perf_counter()
        body = make_epoch(
            model, optimizer, num_examples=n, batch_size=batch_size, drop_last=config.drop_last
        )
        if vectorize:
            body = jax.vmap(body, in_axes=(0, 0, None, None, 0))
        lowered = jax.jit(body).lower(params, opt_state, train_x, train_y, orders(0))
        epoch_fn, used_options = compile_lowered(
            lowered, epoch_compiler_options(None if custom else config.optimizer, config.model)
        )
        COMPILATIONS["epoch"] += 1
        if cache_key is not None:
            _EPOCH_CACHE[cache_key] = (epoch_fn, used_options)
        compile_seconds = time.perf_counter() - started
    evaluate = _EVAL_CACHE.get(_model_key(config) + (vectorize,))
    if evaluate is None:
        single = _evaluate_fn(model)
        evaluate = jax.jit(jax.vmap(single, in_axes=(0, None, None)) if vectorize else single)
        _EVAL_CACHE[_model_key(config) + (vectorize,)] = evaluate
    engine = {
        "xla_options": describe_options(used_options),
        "xla_cpu_threads": str(xla_threads_in_use() or "unknown"),
    }
    for run in runs:
        run.compile_seconds = compile_seconds
        run.versions.update(engine)
        if on_start is not None:
            on_start(run)

    # 5. Epochs: one compiled call each, one device-to-host copy of its step costs.
    active = list(range(len(runs)))
    steps_done = 0
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        params, opt_state, costs = epoch_fn(params, opt_state, train_x, train_y, orders(epoch))
        all_costs = np.asarray(costs)  # waits for the epoch to finish
        seconds = time.perf_counter() - started
        if not vectorize:
            all_costs = all_costs[None]

        started = time.perf_counter()
        measured = {}
        for name, x, y in evaluations:
            cost, accuracy = evaluate(params, x, y)
            measured[name] = (np.atleast_1d(np.asarray(cost)), np.atleast_1d(np.asarray(accuracy)))
        eval_seconds = time.perf_counter() - started

        for i in list(active):
            run = runs[i]
            arm_costs = all_costs[i]
            bad = np.flatnonzero(~np.isfinite(arm_costs))
            if bad.size:
                arm_costs = arm_costs[: bad[0] + 1]
                run.diverged_step = steps_done + int(bad[0]) + 1
            metrics: dict[str, float | None] = {"val_cost": None, "val_accuracy": None}
            for name, (cost_values, accuracy_values) in measured.items():
                metrics[f"{name}_cost"] = float(cost_values[i])
                metrics[f"{name}_accuracy"] = float(accuracy_values[i])
            record = EpochRecord(
                epoch=epoch,
                steps=steps_done + len(arm_costs),
                mean_step_cost=float(np.mean(arm_costs)),
                seconds=seconds,
                eval_seconds=eval_seconds,
                **metrics,  # type: ignore[arg-type]
            )
            run.epochs.append(record)
            run.step_costs.append(arm_costs)
            reached = record.val_accuracy if target_split == "validation" else record.test_accuracy
            target = run.config.target_accuracy
            if target is not None and run.target is None and (reached or 0.0) >= target:
                run.target = TargetReached(
                    target, target_split, epoch, record.steps, run.train_seconds
                )
            if run.diverged_step is not None:
                run.status = "diverged"
            if on_epoch is not None:
                on_epoch(run, record, arm_costs)
            out_of_time = (
                run.config.max_seconds is not None and run.train_seconds >= run.config.max_seconds
            )
            if (
                run.diverged_step is not None
                or (run.config.stop_at_target and run.target)
                or out_of_time
            ):
                active.remove(i)
                run.params = _to_numpy_tree(_arm(params, i) if vectorize else params)
        steps_done += all_costs.shape[1]
        if not active:
            break
    for i in active:
        runs[i].params = _to_numpy_tree(_arm(params, i) if vectorize else params)
    for run in runs:
        if run.status == "running":
            run.status = "finished"
    return runs
