"""The classifiers: ``mlp`` (the article's 784-200-100-30-10), ``logreg`` and ``cnn`` (fmnist_2c2d).

A model is a pair of pure functions, like an optax optimizer: ``init(key=...)`` builds the parameter
pytree and ``apply(params, image)`` maps *one* 28x28 image to 10 logits. Batches are handled by
``jax.vmap`` outside (as equinox's layers are), which XLA turns into ordinary matrix products.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .config import MODEL_NAMES
from .errors import ConfigError
from .initializers import Init
from .types import Key, Params

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "gelu": jax.nn.gelu,
}
MODELS = MODEL_NAMES
# Models made of dense layers only (their first layer is a product with the flattened image).
DENSE_MODELS = ("mlp", "logreg")
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10


@dataclass(frozen=True)
class Model:
    """A classifier as two pure functions, and the FLOPs of one example's forward pass."""

    name: str
    init: Callable[..., Params]
    apply: Callable[[Params, Float[Array, "28 28"]], Float[Array, "10"]]
    forward_flops: int
    # Examples per evaluation chunk: bounds activation memory (the CNN's patches are large).
    eval_chunk: int = 1000
    # For the memory estimate made before training (engine.memory): the number of parameters,
    # and the floats one example's forward pass holds for the backward pass.
    num_params: int = 0
    activation_floats: int = 0


def _dense_params(
    key: Key, sizes: Sequence[int], kernel_init: Init, bias_init: Init, *, prefix: str = "dense"
) -> Params:
    keys = jax.random.split(key, len(sizes) - 1)
    params = {}
    for i, (key_i, n_in, n_out) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True)):
        params[f"{prefix}_{i}"] = _layer(key_i, (n_in, n_out), kernel_init, bias_init)
    return params


def _layer(key: Key, kernel_shape: tuple[int, ...], kernel_init: Init, bias_init: Init) -> Params:
    kernel_key, bias_key = jax.random.split(key)
    return {
        "kernel": kernel_init(kernel_key, kernel_shape, jnp.float32),
        "bias": bias_init(bias_key, (kernel_shape[-1],), jnp.float32),
    }


def _dense_stack(
    params: Params, x: Float[Array, " features"], n_layers: int, act: Callable[[Array], Array]
) -> Float[Array, "10"]:
    for i in range(n_layers):
        layer = params[f"dense_{i}"]
        x = x @ layer["kernel"] + layer["bias"]
        if i < n_layers - 1:
            x = act(x)
    return x


def mlp(hidden: Sequence[int] = (200, 100, 30), activation: str = "relu") -> Model:
    """A fully connected classifier 784 -> hidden... -> 10.

    Examples:
      >>> import jax
      >>> from costhill.initializers import make_initializer
      >>> model = mlp((200, 100, 30))
      >>> params = model.init(key=jax.random.key(0), kernel_init=make_initializer("glorot_uniform"),
      ...                     bias_init=make_initializer("zeros"))
      >>> model.apply(params, jax.numpy.zeros((28, 28))).shape
      (10,)
    """
    if activation not in ACTIVATIONS:
        known = ", ".join(ACTIVATIONS)
        raise ConfigError(f"activation {activation!r}: unknown; known: {known}")
    if any(h <= 0 for h in hidden):
        raise ConfigError(f"hidden {','.join(map(str, hidden))}: every width must be positive")
    sizes = (IMAGE_SHAPE[0] * IMAGE_SHAPE[1], *hidden, NUM_CLASSES)
    act = ACTIVATIONS[activation]

    def init(*, key: Key, kernel_init: Init, bias_init: Init) -> Params:
        return _dense_params(key, sizes, kernel_init, bias_init)

    def apply(params: Params, image: Float[Array, "28 28"]) -> Float[Array, "10"]:
        return _dense_stack(params, image.reshape(-1), len(sizes) - 1, act)

    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    flops = sum(2 * a * b for a, b in pairs)
    num_params = sum(a * b + b for a, b in pairs)
    return Model("mlp", init, apply, flops, num_params=num_params, activation_floats=sum(sizes))


def logreg() -> Model:
    """Multinomial logistic regression: one dense layer 784 -> 10."""
    model = mlp(hidden=(), activation="relu")
    return dataclasses.replace(model, name="logreg")


Convolution = Callable[
    [Float[Array, "h w c"], Float[Array, "5 5 c o"], Float[Array, " o"]], Float[Array, "h w o"]
]


def _conv5x5_same(
    x: Float[Array, "h w c"], kernel: Float[Array, "5 5 c o"], bias: Float[Array, " o"]
) -> Float[Array, "h w o"]:
    """A 5x5 'same' convolution as one matrix product over the 25 shifted copies of ``x``.

    XLA's CPU convolution is many times slower inside a loop body than outside it
    (jax-ml/jax#12868), and every epoch here is a loop (``lax.scan``); slices and a matmul are not.
    Equal to ``lax.conv_general_dilated`` to float rounding (tested).

    The patches are built in two passes, the 5 column shifts and then the 5 row shifts of those:
    10 copies whose contiguous runs are 5·c floats long, where one 25-way concatenation made 25
    copies of runs of c floats (the second convolution's c is 32). The patch matrix is the same,
    and a CNN step faster (BENCHMARKS.md, "Engine choices"; ``python -m bench.convolution``).
    """
    h, w, c = x.shape
    padded = jnp.pad(x, ((2, 2), (2, 2), (0, 0)))
    columns = jnp.concatenate([padded[:, j : j + w, :] for j in range(5)], axis=-1)
    patches = jnp.concatenate([columns[i : i + h] for i in range(5)], axis=-1)
    return patches @ kernel.reshape(25 * c, -1) + bias


def _max_pool_2x2(x: Float[Array, "h w c"]) -> Float[Array, "h/2 w/2 c"]:
    h, w, c = x.shape
    return x.reshape(h // 2, 2, w // 2, 2, c).max(axis=(1, 3))


def cnn(*, convolution: Convolution | None = None) -> Model:
    """fmnist_2c2d, the TensorFlow tutorial's net: conv 32 5x5 + ReLU, max-pool 2, conv 64 5x5 +
    ReLU, max-pool 2, dense 1024 + ReLU, dense 10 (as in DeepOBS).

    ``convolution`` replaces the 5x5 'same' convolution of one image (``bench.convolution`` times
    XLA's own against the default)."""
    convolve = convolution or _conv5x5_same
    dense_sizes = (7 * 7 * 64, 1024, NUM_CLASSES)

    def init(*, key: Key, kernel_init: Init, bias_init: Init) -> Params:
        k1, k2, k3 = jax.random.split(key, 3)
        params = _dense_params(k3, dense_sizes, kernel_init, bias_init)
        for name, k, shape in (("conv_0", k1, (5, 5, 1, 32)), ("conv_1", k2, (5, 5, 32, 64))):
            params[name] = _layer(k, shape, kernel_init, bias_init)
        return params

    def apply(params: Params, image: Float[Array, "28 28"]) -> Float[Array, "10"]:
        x = image[:, :, None]
        for name in ("conv_0", "conv_1"):
            conv = convolve(x, params[name]["kernel"], params[name]["bias"])
            x = _max_pool_2x2(jax.nn.relu(conv))
        return _dense_stack(params, x.reshape(-1), 2, jax.nn.relu)

    conv_flops = 2 * 28 * 28 * 25 * 1 * 32 + 2 * 14 * 14 * 25 * 32 * 64
    pairs = list(zip(dense_sizes[:-1], dense_sizes[1:], strict=True))
    dense_flops = sum(2 * a * b for a, b in pairs)
    num_params = sum(a * b + b for a, b in pairs) + (25 * 32 + 32) + (25 * 32 * 64 + 64)
    # The two convolutions' 5x5 patches, their outputs and pools, then the dense layers.
    floats = 28 * 28 * 25 + 28 * 28 * 32 * 2 + 14 * 14 * (25 * 32 + 64 * 2) + 7 * 7 * 64
    return Model(
        "cnn",
        init,
        apply,
        conv_flops + dense_flops,
        eval_chunk=100,
        num_params=num_params,
        activation_floats=floats + sum(dense_sizes),
    )


def dense_layers_after_first(
    params: Params, first: Float[Array, "batch width"], activation: str
) -> Float[Array, "batch 10"]:
    """The rest of a dense model's forward pass (``mlp``, ``logreg``), from the first layer's
    pre-activations ``first`` of a batch: what the hill needs to evaluate many points of one
    plane, whose first-layer products are linear in the plane's coordinates."""
    act = ACTIVATIONS[activation]
    x = first
    for i in range(1, sum(1 for name in params if name.startswith("dense_"))):
        layer = params[f"dense_{i}"]
        x = act(x) @ layer["kernel"] + layer["bias"]
    return x


def make_model(name: str, *, hidden: Sequence[int] = (200, 100, 30), activation: str = "relu"):
    """The model called ``name``, with the MLP's shape options."""
    if name == "mlp":
        return mlp(hidden, activation)
    if name == "logreg":
        return logreg()
    if name == "cnn":
        return cnn()
    raise ConfigError(f"model {name!r}: unknown model; known: {', '.join(MODELS)}")


def batched_logits(
    model: Model, params: Params, images: Float[Array, "batch 28 28"]
) -> Float[Array, "batch 10"]:
    """Logits of a batch: ``model.apply`` mapped over the leading axis."""
    return jax.vmap(model.apply, in_axes=(None, 0))(params, images)
