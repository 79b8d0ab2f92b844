"""Model shapes over depth and width, and the CNN's convolution against XLA's."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from costhill.errors import ConfigError
from costhill.initializers import make_initializer
from costhill.models import _conv5x5_same, batched_logits, make_model

GLOROT, ZEROS = make_initializer("glorot_uniform"), make_initializer("zeros")


@pytest.mark.parametrize("hidden", [(), (7,), (200, 100, 30), (16, 16, 16, 16)])
@pytest.mark.parametrize("batch", [1, 5])
def test_mlp_shapes(hidden, batch):
    model = make_model("mlp", hidden=hidden)
    params = model.init(key=jax.random.key(0), kernel_init=GLOROT, bias_init=ZEROS)
    sizes = [784, *hidden, 10]
    assert [params[f"dense_{i}"]["kernel"].shape for i in range(len(sizes) - 1)] == list(
        zip(sizes[:-1], sizes[1:], strict=True)
    )
    assert batched_logits(model, params, jnp.zeros((batch, 28, 28))).shape == (batch, 10)


def test_seed_mlp_has_the_article_s_parameter_count():
    model = make_model("mlp")
    params = model.init(key=jax.random.key(0), kernel_init=GLOROT, bias_init=ZEROS)
    count = sum(leaf.size for leaf in jax.tree.leaves(params))
    assert count == 784 * 200 + 200 + 200 * 100 + 100 + 100 * 30 + 30 + 30 * 10 + 10


def test_cnn_convolution_equals_xla_s():
    x = jax.random.normal(jax.random.key(0), (14, 14, 3))
    k = jax.random.normal(jax.random.key(1), (5, 5, 3, 4))
    b = jnp.arange(4.0)
    expected = (
        jax.lax.conv_general_dilated(
            x[None], k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )[0]
        + b
    )
    np.testing.assert_allclose(_conv5x5_same(x, k, b), expected, rtol=1e-5, atol=1e-5)


def test_cnn_is_fmnist_2c2d():
    model = make_model("cnn")
    params = model.init(key=jax.random.key(0), kernel_init=GLOROT, bias_init=ZEROS)
    shapes = {name: layer["kernel"].shape for name, layer in params.items()}
    assert shapes == {
        "conv_0": (5, 5, 1, 32),
        "conv_1": (5, 5, 32, 64),
        "dense_0": (3136, 1024),
        "dense_1": (1024, 10),
    }
    assert batched_logits(model, params, jnp.zeros((2, 28, 28))).shape == (2, 10)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"name": "vgg"}, "unknown model"),
        ({"name": "mlp", "activation": "swish"}, "unknown; known: relu"),
        ({"name": "mlp", "hidden": (10, 0)}, "every width must be positive"),
    ],
)
def test_bad_models_are_named(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        make_model(**kwargs)
