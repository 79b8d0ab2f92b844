"""What a run records: ``Run``, ``EpochRecord``, ``TargetReached``, and the flat-parameter codec.

NumPy only: the store, the results and the CLI read runs without importing JAX. The engine fills
these records as it trains; the store writes and reads them.

    >>> flat = flatten_params({"dense_0": {"kernel": np.ones((2, 3)), "bias": np.zeros(3)}})
    >>> sorted(flat)
    ['dense_0/bias', 'dense_0/kernel']
    >>> unflatten_params(flat)["dense_0"]["kernel"].shape
    (2, 3)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import RunConfig
from .types import FlatParams, Params


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
class Snapshot:
    """The parameters at one step of a run, with the training cost there (full training split)."""

    step: int  # updates taken before it: 0 is the initial point
    epoch: int  # the epoch during (or at whose end) it was taken; 0 for the initial point
    train_cost: float | None  # None: not finite (a diverged run)
    params: FlatParams


@dataclass
class TrainingState:
    """What continuing a run needs, as of the end of an epoch: its parameters, its optimizer
    state (the leaves of the optimizer's pytree, in order) and its place in the data order (the
    epoch: each epoch's order follows from the seed and the epoch alone)."""

    epoch: int
    steps: int
    params: FlatParams
    optimizer_leaves: list[np.ndarray]


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
    params: FlatParams | None = None  # "/"-joined pytree path -> array
    compile_seconds: float = 0.0
    diverged_step: int | None = None
    target: TargetReached | None = None
    snapshots: list[Snapshot] = field(default_factory=list)
    state: TrainingState | None = None  # kept after each epoch when training asks for it
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


def flatten_params(tree: Params, prefix: str = "") -> FlatParams:
    """Nested dicts of arrays (JAX or NumPy) -> ``{"/"-joined path: NumPy array}``."""
    flat: FlatParams = {}
    for key in sorted(tree):  # sorted, as JAX orders a dict's leaves
        value = tree[key]
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=f"{path}/"))
        else:
            flat[path] = np.asarray(value)
    return flat


def unflatten_params(flat: FlatParams) -> Params:
    """Rebuild the nested parameter dict (NumPy arrays) from ``"/"``-joined paths."""
    tree: dict[str, Any] = {}
    for path, leaf in flat.items():
        node = tree
        *parents, last = path.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = np.asarray(leaf)
    return tree


def params_vector(flat: FlatParams) -> np.ndarray:
    """All parameters as one float32 vector, in sorted path order (the hill's coordinates).

    Examples:
      >>> params_vector({"b": np.ones(2), "a": np.zeros((1, 2))}).tolist()
      [0.0, 0.0, 1.0, 1.0]
    """
    return np.concatenate([np.asarray(flat[k], np.float32).ravel() for k in sorted(flat)])


def params_layout(flat: FlatParams) -> list[tuple[str, tuple[int, ...]]]:
    """The (path, shape) of each parameter array, in ``params_vector``'s order."""
    return [(k, tuple(np.shape(flat[k]))) for k in sorted(flat)]


def params_from_vector(vector: np.ndarray, layout: list[tuple[str, tuple[int, ...]]]) -> FlatParams:
    """The inverse of ``params_vector`` for a given ``params_layout``."""
    flat: FlatParams = {}
    start = 0
    for path, shape in layout:
        size = int(np.prod(shape, dtype=np.int64))
        flat[path] = np.asarray(vector[start : start + size], np.float32).reshape(shape)
        start += size
    if start != len(vector):
        raise ValueError(f"a vector of {len(vector)} values does not fit a layout of {start}")
    return flat
