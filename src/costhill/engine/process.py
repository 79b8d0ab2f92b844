"""Engine set-up for a process that trains: XLA's CPU thread count, then the compilation cache.

Every way of training (``costhill train``, ``costhill sweep``, ``costhill demo``, worker
processes, and ``costhill.train`` from Python) calls ``prepare_process`` before its first
compiled epoch. The thread count can be set only before JAX starts its CPU client, so the first
call in a process decides it; later calls change nothing.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ..config import RunConfig
from .compilation_cache import use_compilation_cache
from .cpu_tuning import use_preferred_xla_threads


def prepare_process(configs: Sequence[RunConfig]) -> Path | None:
    """Choose XLA's CPU threads for ``configs`` (unless the user or an earlier call did), then
    point JAX's persistent compilation cache at costhill's folder for that thread count.

    Returns the cache folder, or None when it was already set or is turned off.
    """
    use_preferred_xla_threads(configs)  # before anything starts JAX's CPU client
    return use_compilation_cache()  # after it: the cache is kept per thread count


def versions() -> dict[str, str]:
    """The versions and machine a run is recorded with."""
    return dict(_versions())


@functools.cache
def _versions() -> dict[str, str]:
    # Read once a process: none of it changes while it runs, and reading a package's metadata
    # costs more than a cheap run's epoch (BENCHMARKS.md, "Tuning").
    import jax
    import jaxlib
    import numpy as np
    import optax

    try:
        costhill_version = version("costhill")
    except PackageNotFoundError:  # running from a source tree that was never installed
        costhill_version = "unknown"
    return {
        "costhill": costhill_version,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(jax.devices()[0].device_kind),
    }
