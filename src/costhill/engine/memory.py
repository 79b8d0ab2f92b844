"""Whether a run, or a cohort of runs, fits in memory: estimated before anything is allocated,
so that a full-batch run on 60,000 images with wide layers is refused with the estimate and how
to shrink it, not killed by the kernel's OOM killer half-way through compiling.

The estimate counts what the compiled epoch holds at once: the splits on the device, each arm's
parameters, gradients and optimizer state (its shape read with ``jax.eval_shape``, nothing
allocated), and one step's activations, kept for the backward pass, with their gradients.
It is an estimate: XLA may fuse some of it away, and needs some working space of its own, which
is why the comparison leaves a tenth of the available memory aside.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from ..config import RunConfig
from ..data import Dataset
from ..errors import ResourceError
from ..models import Model

FLOAT_BYTES = 4
IMAGE_FLOATS = 28 * 28
HEADROOM = 0.9  # of the available memory, the share an estimate may take


@dataclass(frozen=True)
class Estimate:
    """Bytes that training would hold at once, by what holds them."""

    data: int
    parameters: int  # parameters, gradients and optimizer state, all arms
    activations: int  # one step's, all arms (and one evaluation chunk's)

    @property
    def total(self) -> int:
        return self.data + self.parameters + self.activations


def estimate(
    model: Model,
    *,
    batch: int,
    examples: int,
    arms: int = 1,
    optimizer_floats: int | None = None,
    eval_chunk: int | None = None,
) -> Estimate:
    """The bytes training ``arms`` copies of ``model`` would hold at once.

    ``batch`` examples per step (the training set's size for full-batch descent); ``examples``
    over all splits on the device; ``optimizer_floats`` per arm (two per parameter, as Adam's,
    if not given).

    >>> from costhill.models import mlp
    >>> e = estimate(mlp((200, 100, 30)), batch=60_000, examples=70_000)
    >>> round(e.activations / 2**30, 2), round(e.total / 2**30, 2)
    (0.5, 0.71)
    """
    slots = 2 * model.num_params if optimizer_floats is None else optimizer_floats
    per_arm = 2 * model.num_params + slots  # parameters, their gradients, the optimizer's state
    step = max(batch, eval_chunk or model.eval_chunk)
    return Estimate(
        data=examples * IMAGE_FLOATS * FLOAT_BYTES,
        parameters=arms * per_arm * FLOAT_BYTES,
        # the forward pass's activations, kept for the backward pass, and their gradients
        activations=arms * step * model.activation_floats * 2 * FLOAT_BYTES,
    )


def available_bytes() -> int:
    """Memory this process may still use: the device's free memory on an accelerator; on the
    CPU the least of the system's available memory and what its cgroup (a container) leaves."""
    device = jax.devices()[0]
    if device.platform != "cpu":
        stats = device.memory_stats() or {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    known = [value for value in (_meminfo_available(), _cgroup_left()) if value is not None]
    return min(known) if known else _total_physical()


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_left() -> int | None:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
    except OSError:
        return None
    if limit == "max":
        return None
    return int(limit) - int(used)


def _total_physical() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB"


def require_memory(
    configs: Sequence[RunConfig], model: Model, data: Dataset, optimizer: object
) -> None:
    """Refuse, before anything is allocated, a run or cohort whose estimate does not fit.

    Raises:
      ResourceError: with the estimate, its parts, what is available and how to shrink it.
    """
    first = configs[0]
    n = len(data.train)
    batch = n if first.batch_size == "full" else min(int(first.batch_size), n)
    found = estimate(
        model,
        batch=batch,
        examples=n + len(data.validation) + len(data.test),
        arms=len(configs),
        optimizer_floats=_optimizer_floats(model, optimizer),
    )
    available = available_bytes()
    if found.total <= HEADROOM * available:
        return
    what = f"a cohort of {len(configs)} runs" if len(configs) > 1 else "the run"
    shrink = [f"batch_size smaller (now {first.batch_size})"] if batch > 1024 else []
    shrink += ["cohorts never (one run at a time)"] if len(configs) > 1 else []
    shrink += ["hidden narrower", "validation smaller"]
    raise ResourceError(
        f"batch_size {first.batch_size}: {what} would need about {_gib(found.total)} "
        f"({_gib(found.activations)} of activations for {batch:,} examples a step, "
        f"{_gib(found.parameters)} of parameters and optimizer state, {_gib(found.data)} of "
        f"data), but {_gib(available)} is available. To fit: " + "; ".join(shrink)
    )


def _optimizer_floats(model: Model, optimizer: object) -> int | None:
    """Floats of one arm's optimizer state, from its shapes alone (nothing is allocated)."""
    init = getattr(optimizer, "init", None)
    if init is None or not model.num_params:
        return None
    shapes = jax.eval_shape(init, jax.ShapeDtypeStruct((model.num_params,), np.float32))
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(shapes))
