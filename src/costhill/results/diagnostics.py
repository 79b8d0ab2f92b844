"""Initializer diagnostics: what each layer of a dense model looks like at a point of training.

    costhill diagnose --init zeros --init normal:stddev=1.0 --init he_normal --steps 50

Per layer, on a batch of training examples: the activations' mean and std, the fraction saturated
(|tanh| or sigmoid beyond 0.97 of its range), the fraction of dead ReLUs (zero for every example),
the gradient's std, the update-to-parameter ratio (log10; about -3 is the usual healthy value,
Karpathy's rule of thumb), the largest group of identical hidden units, and beside the weights'
std the one Glorot's (tanh, sigmoid) or He's (ReLU-like) variance argument prescribes for the
layer (Glorot & Bengio 2010; He et al. 2015). Zeros' symmetry shows as every hidden unit
identical; normal(stddev=1.0)'s blow-up as saturated or exploding activations.

This module computes statistics at given parameters; the training steps behind "after N steps"
are the engine's (``costhill diagnose`` trains them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import RunConfig
from ..data import load_for
from ..errors import ConfigError

SATURATION = 0.97  # of the activation's range
BATCH = 1_000


@dataclass
class LayerStats:
    name: str
    units: int
    activation_mean: float
    activation_std: float
    saturated: float | None  # tanh and sigmoid only
    dead: float | None  # ReLU only: units that are zero for every example
    gradient_std: float
    log10_update_ratio: float | None
    identical_units: int  # the largest group of hidden units with the same weights and bias
    weight_std: float
    predicted_std: float  # the weight std Glorot's or He's argument gives this layer


@dataclass
class Diagnosis:
    init: str
    step: int
    cost: float
    layers: list[LayerStats] = field(default_factory=list)


def _check(config: RunConfig) -> None:
    if config.model not in ("mlp", "logreg"):
        raise ConfigError(f"model {config.model!r}: diagnose reads dense models (mlp, logreg)")


def initial_params(config: RunConfig) -> Any:
    """The parameters ``config`` starts from (its initializers, its seed)."""
    import jax

    from ..initializers import make_initializer, parse_init
    from ..models import make_model

    model = make_model(config.model, hidden=config.hidden, activation=config.activation)
    kernel = make_initializer(parse_init(config.init))
    bias = make_initializer(parse_init(config.bias_init, what="bias_init"), for_bias=True)
    return model.init(key=jax.random.key(config.seed), kernel_init=kernel, bias_init=bias)


def first_update(config: RunConfig, params: Any, images: Any, labels: Any) -> Any:
    """The update the config's optimizer would make from ``params`` (computed, not applied)."""
    import jax

    from ..optimizers import make_optimizer

    optimizer = make_optimizer(config.optimizer, config.lr, dict(config.opt), seed=config.seed)
    grads = jax.grad(_loss(config, images, labels))(params)
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    return updates


def _loss(config: RunConfig, images: Any, labels: Any) -> Any:
    import jax.numpy as jnp
    import optax

    from ..models import batched_logits, make_model

    model = make_model(config.model, hidden=config.hidden, activation=config.activation)
    x, y = jnp.asarray(images), jnp.asarray(labels)

    def loss(params: Any) -> Any:
        return optax.softmax_cross_entropy_with_integer_labels(
            batched_logits(model, params, x), y
        ).mean()

    return loss


def diagnose(
    config: RunConfig, params: Any, images: Any, labels: Any, *, step: int, update: Any
) -> Diagnosis:
    """Every layer's statistics at ``params`` (``update``: the step's change of parameters)."""
    import jax

    from ..models import ACTIVATIONS

    _check(config)
    loss = _loss(config, images, labels)
    cost, grads = jax.value_and_grad(loss)(params)
    act = ACTIVATIONS[config.activation]
    x = np.asarray(images, np.float32).reshape(len(images), -1)
    layers = []
    count = sum(1 for name in params if name.startswith("dense_"))
    for i in range(count):
        name = f"dense_{i}"
        kernel, bias = np.asarray(params[name]["kernel"]), np.asarray(params[name]["bias"])
        z = x @ kernel + bias
        hidden = i < count - 1
        a = np.asarray(act(z)) if hidden else z
        layers.append(
            LayerStats(
                name=name,
                units=kernel.shape[1],
                activation_mean=float(a.mean()),
                activation_std=float(a.std()),
                saturated=_saturated(config.activation, a) if hidden else None,
                dead=float(np.mean(np.all(a <= 0, axis=0)))
                if hidden and _relu_like(config)
                else None,
                gradient_std=float(np.asarray(grads[name]["kernel"]).std()),
                log10_update_ratio=_update_ratio(update, params, name),
                identical_units=_identical_units(kernel, bias) if hidden else 0,
                weight_std=float(kernel.std()),
                predicted_std=_prescribed_std(config, *kernel.shape),
            )
        )
        x = a
    return Diagnosis(config.init, step, float(cost), layers)


def _relu_like(config: RunConfig) -> bool:
    return config.activation in ("relu", "gelu")


def _saturated(activation: str, a: np.ndarray) -> float | None:
    if activation == "tanh":
        return float(np.mean(np.abs(a) > SATURATION))
    if activation == "sigmoid":
        return float(np.mean((a > SATURATION) | (a < 1 - SATURATION)))
    return None


def _update_ratio(update: Any, params: Any, name: str) -> float | None:
    if update is None:
        return None
    change = float(np.linalg.norm(np.asarray(update[name]["kernel"])))
    size = float(np.linalg.norm(np.asarray(params[name]["kernel"])))
    if change == 0.0 or size == 0.0:
        return None if size == 0.0 and change == 0.0 else (math.inf if size == 0 else -math.inf)
    return math.log10(change / size)


def _identical_units(kernel: np.ndarray, bias: np.ndarray) -> int:
    """The size of the largest group of output units with equal weights and bias (1: none)."""
    columns = np.concatenate([kernel, bias[None, :]]).T
    _, counts = np.unique(np.round(columns, 6), axis=0, return_counts=True)
    return int(counts.max())


def _prescribed_std(config: RunConfig, fan_in: int, fan_out: int) -> float:
    if _relu_like(config):
        return math.sqrt(2.0 / fan_in)  # He et al. 2015
    return math.sqrt(2.0 / (fan_in + fan_out))  # Glorot & Bengio 2010


def diagnosis_batch(
    config: RunConfig, data_dir: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The fixed batch the diagnostics are measured on: the first training examples."""
    data = load_for(config, data_dir=data_dir)
    return data.train.images[:BATCH], data.train.labels[:BATCH]


def diagnose_initializers(
    configs: list[RunConfig], *, steps: int = 0, data_dir: str | None = None
) -> list[Diagnosis]:
    """Each config at step 0, its update the optimizer's first (``steps`` must be 0 here: the
    statistics after training steps need the engine, as ``costhill diagnose`` does)."""
    if steps:
        raise ConfigError("steps: diagnose_initializers measures step 0; costhill diagnose trains")
    found = []
    for config in configs:
        _check(config)
        images, labels = diagnosis_batch(config, data_dir)
        params = initial_params(config)
        update = first_update(config, params, images, labels)
        found.append(diagnose(config, params, images, labels, step=0, update=update))
    return found
