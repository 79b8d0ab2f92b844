"""costhill: where to start on the cost hill, and how to walk down it.

The public API; the CLI (``costhill --help``) is a thin layer over it. Names are imported on first
use so that ``costhill --help`` does not pay for importing JAX.

    >>> import costhill
    >>> run = costhill.train(costhill.RunConfig(dataset="fashion-mnist-sample", epochs=1))
    >>> run.status
    'finished'
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "RunConfig": "config",
    "load_preset": "config",
    "load_data": ("data", "load"),
    "CosthillError": "errors",
    "ConfigError": "errors",
    "DataError": "errors",
    "StoreError": "errors",
    "INITIALIZERS": "initializers",
    "OPTIMIZERS": "optimizers",
    "Run": "records",
    "train": "engine",
    "train_cohort": "engine",
    "prepare_process": "engine",
    "Store": "store",
    "load_run": "store",
    "plot_costs": "results.plots",
}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .config import RunConfig as RunConfig
    from .config import load_preset as load_preset
    from .data import load as load_data  # noqa: F401
    from .engine import prepare_process as prepare_process
    from .engine import train as train
    from .engine import train_cohort as train_cohort
    from .errors import ConfigError as ConfigError
    from .errors import CosthillError as CosthillError
    from .errors import DataError as DataError
    from .errors import StoreError as StoreError
    from .initializers import INITIALIZERS as INITIALIZERS
    from .optimizers import OPTIMIZERS as OPTIMIZERS
    from .records import Run as Run
    from .results.plots import plot_costs as plot_costs
    from .store import Store as Store
    from .store import load_run as load_run


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'costhill' has no attribute {name!r}")
    module, attr = target if isinstance(target, tuple) else (target, name)
    value = getattr(import_module(f".{module}", __name__), attr)
    globals()[name] = value
    return value
