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
from ._types import OptState, Params
from .config import RunConfig
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

    def summary(self) -> dict[str, Any]:
        """The flat record the CLI prints with ``--json`` and the store indexes."""
        last = self.epochs[-1] if self.epochs else None
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
    """A jitted function that trains one epoch and returns (params, opt_state, step_costs)."""

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

    return jax.jit(epoch)


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

    return jax.jit(evaluate)


# Compiled epochs and evaluators, reused by later runs of the same shape so that a second run
# (another seed or initializer) compiles nothing. Keyed by everything the compiled code closes over.
_EPOCH_CACHE: dict[tuple[Any, ...], Any] = {}
_EVAL_CACHE: dict[tuple[Any, ...], Callable[..., tuple[Array, Array]]] = {}
COMPILATIONS = {"epoch": 0}


def _model_key(cfg: RunConfig) -> tuple[Any, ...]:
    return (cfg.model, cfg.hidden, cfg.activation)


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
    # 1. Validate everything that can be validated before any data moves.
    model, kernel_init, bias_init = check(config, custom_optimizer=optimizer is not None)

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
    if optimizer is None:
        optimizer = make_optimizer(
            config.optimizer,
            config.lr,
            dict(config.opt),
            schedule=config.schedule,
            steps_per_epoch=steps_per_epoch,
            total_steps=total_steps,
            seed=config.seed,
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
        )
    else:
        cache_key = None  # a caller's own optimizer: no way to know it equals a cached one
    train_x, train_y = _split_arrays(data.train)
    evaluations = [("train", *_split_arrays(data.train)), ("test", *_split_arrays(data.test))]
    if len(data.validation):
        evaluations.insert(1, ("val", *_split_arrays(data.validation)))

    run = Run(
        config=config,
        status="running",
        regime=config.regime(n),
        batch_size=batch_size,
        num_train=n,
        steps_per_epoch=steps_per_epoch,
        data=data.describe(),
        versions=versions(),
    )
    target_split = "validation" if len(data.validation) else "test"

    # 3. Parameters and optimizer state (the data order is drawn per epoch by epoch_order).
    init_key = jax.random.key(config.seed)
    params = model.init(key=init_key, kernel_init=kernel_init, bias_init=bias_init)
    opt_state = optimizer.init(params)

    # 4. Compile once (timed apart), or reuse the compilation of an earlier run of this shape.
    epoch_fn = _EPOCH_CACHE.get(cache_key) if cache_key is not None else None
    if epoch_fn is None:
        started = time.perf_counter()
        epoch_fn = (
            make_epoch(
                model, optimizer, num_examples=n, batch_size=batch_size, drop_last=config.drop_last
            )
            .lower(params, opt_state, train_x, train_y, epoch_order(n, seed=config.seed, epoch=0))
            .compile()
        )
        COMPILATIONS["epoch"] += 1
        if cache_key is not None:
            _EPOCH_CACHE[cache_key] = epoch_fn
        run.compile_seconds = time.perf_counter() - started
    evaluate = _EVAL_CACHE.setdefault(_model_key(config), _evaluate_fn(model))
    if on_start is not None:
        on_start(run)

    # 5. Epochs: one compiled call each, one device-to-host copy of its step costs.
    steps_done = 0
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        params, opt_state, costs = epoch_fn(
            params, opt_state, train_x, train_y, epoch_order(n, seed=config.seed, epoch=epoch)
        )
        costs = np.asarray(costs)  # waits for the epoch to finish
        seconds = time.perf_counter() - started
        bad = np.flatnonzero(~np.isfinite(costs))
        if bad.size:
            costs = costs[: bad[0] + 1]
            run.diverged_step = steps_done + int(bad[0]) + 1
        steps_done += len(costs)

        started = time.perf_counter()
        metrics: dict[str, float | None] = {"val_cost": None, "val_accuracy": None}
        for name, x, y in evaluations:
            cost, accuracy = evaluate(params, x, y)
            metrics[f"{name}_cost"] = float(cost)
            metrics[f"{name}_accuracy"] = float(accuracy)
        record = EpochRecord(
            epoch=epoch,
            steps=steps_done,
            mean_step_cost=float(np.mean(costs)),
            seconds=seconds,
            eval_seconds=time.perf_counter() - started,
            **metrics,  # type: ignore[arg-type]
        )
        run.epochs.append(record)
        run.step_costs.append(costs)
        measured = record.val_accuracy if target_split == "validation" else record.test_accuracy
        if (
            config.target_accuracy is not None
            and run.target is None
            and measured is not None
            and measured >= config.target_accuracy
        ):
            run.target = TargetReached(
                config.target_accuracy, target_split, epoch, steps_done, run.train_seconds
            )
        if run.diverged_step is not None:
            run.status = "diverged"
        if on_epoch is not None:
            on_epoch(run, record, costs)
        if run.diverged_step is not None:
            break
        if config.stop_at_target and run.target is not None:
            break
    if run.status == "running":
        run.status = "finished"
    run.params = _to_numpy_tree(params)
    return run
