"""The machine's limit, measured in the same run: float32 matmul throughput, and FLOP counts.

The matmuls run in child processes, once with this machine's OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE
(set for old OpenBLAS builds; they halve a current one's speed here) unset and once as the machine
configured them. The faster of the two readings is the limit, so the limit is never understated.
``python -m bench`` unsets them in its own process too (``release_openblas_overrides``), so that
its NumPy peer runs on the kernel the limit was read with.

Each product is timed into an output array allocated once. With a new output per call, glibc
handed the memory of a large output (the 784x200 weight gradient, 627 KB) back to the system after
every call, and OpenBLAS's two threads then faulted its pages in anew: that product read 230-270
µs instead of ~50, a cost of the allocator, not of the product.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

SEED_SIZES = (784, 200, 100, 30, 10)
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_released: dict[str, str] = {}  # what release_openblas_overrides unset, for the as-set reading

_MATMUL_SCRIPT = """
import json, sys, time
import numpy as np
shapes, repeats = json.loads(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
seconds = []
for m, k, n in shapes:
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), np.float32)
    np.matmul(a, b, out=out)
    # Enough products per timing that small shapes are not timer-bound (2,000 products of ~1 us
    # of call overhead each are 2 ms), but not millions: 2 GFLOP of a batch-1 layer's products
    # took minutes.
    inner = max(1, min(int(2e9 // (2 * m * k * n)), 2_000))
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            np.matmul(a, b, out=out)
        best = min(best, (time.perf_counter() - t) / inner)
    seconds.append(best)
try:
    from threadpoolctl import threadpool_info
    kernel = "; ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} "
                       f"{i.get('num_threads')} threads" for i in threadpool_info())
except ImportError:
    kernel = "unknown (threadpoolctl missing)"
print(json.dumps({"seconds": seconds, "kernel": kernel}))
"""


def _matmul_seconds(shapes: list[tuple[int, int, int]], repeats: int, env: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _MATMUL_SCRIPT, json.dumps(shapes), str(repeats)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def matmul_readings(shapes: list[tuple[int, int, int]], repeats: int) -> dict:
    """Best seconds of each (m, k, n) product, with the OpenBLAS overrides unset and as set.

    Returns ``{"seconds": [...], "kernel": str, "as_configured": [...]}``, ``seconds`` being the
    faster reading of each shape.
    """
    plain = {k: v for k, v in os.environ.items() if k not in OPENBLAS_OVERRIDES}
    free = _matmul_seconds(shapes, repeats, plain)
    configured = _matmul_seconds(shapes, repeats, {**os.environ, **_released})
    best = [min(a, b) for a, b in zip(free["seconds"], configured["seconds"], strict=True)]
    return {"seconds": best, "kernel": free["kernel"], "as_configured": configured["seconds"]}


def release_openblas_overrides() -> dict[str, str]:
    """Unset the machine's OpenBLAS overrides in this process, before NumPy first loads OpenBLAS
    (it reads them once, then); returns what was unset."""
    unset = {k: os.environ.pop(k) for k in OPENBLAS_OVERRIDES if k in os.environ}
    _released.update(unset)
    return unset


def mlp_step_products(batch: int, sizes=SEED_SIZES) -> list[tuple[int, int, int]]:
    """The 11 matrix products of one training step of an MLP (no input gradient for layer 1)."""
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True))
    forward = [(batch, a, b) for a, b in pairs]
    weight_grads = [(a, batch, b) for a, b in pairs]
    input_grads = [(batch, b, a) for a, b in pairs[1:]]
    return forward + weight_grads + input_grads


def mlp_train_flops_per_example(sizes=SEED_SIZES) -> int:
    """6*sum(a*b) - 2*784*200: forward, weight gradients, input gradients but the first."""
    products = sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    return 6 * products - 2 * sizes[0] * sizes[1]


def cnn_train_flops_per_example() -> int:
    """fmnist_2c2d: three times the forward pass, less the first convolution's input gradient."""
    conv1 = 2 * 28 * 28 * 25 * 1 * 32
    conv2 = 2 * 14 * 14 * 25 * 32 * 64
    dense = 2 * 3136 * 1024 + 2 * 1024 * 10
    forward = conv1 + conv2 + dense
    return 3 * forward - conv1
