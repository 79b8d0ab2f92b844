"""The article's claim about the three ways down, measured on stored runs.

Full-batch descent walks straight down, stochastic descent zig-zags, mini-batch lies between:
per run, the step-to-step noise of the cost (the standard deviation of the change of the cost
from one step to the next, over the run's last epoch) and the path's length divided by its
end-to-end distance in parameter space (from its snapshots; 1 for a straight walk).

    costhill plot regimes --sweep hill --out regimes.png
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..records import Run, params_vector
from ..store import Store


@dataclass
class RegimeStats:
    run_id: int
    regime: str
    batch_size: int
    steps: int
    step_noise: float | None  # std of the cost's step-to-step change over the last epoch
    path_ratio: float | None  # path length / end-to-end distance (snapshots)
    final_cost: float | None


def step_noise(run: Run) -> float | None:
    """The standard deviation of the cost's change between consecutive steps of the last
    epoch (of the whole run, for a run of one step an epoch)."""
    costs = run.step_costs[-1] if run.step_costs and len(run.step_costs[-1]) > 2 else None
    if costs is None:
        costs = run.all_step_costs()
    if len(costs) < 3:
        return None
    return float(np.std(np.diff(np.asarray(costs, np.float64))))


def path_ratio(vectors: np.ndarray) -> float | None:
    """Length of the polyline through ``vectors`` over the distance from first to last.

    Examples:
      >>> path_ratio(np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0]]))  # 2√2 / 2
      1.4142135623730951
    """
    if len(vectors) < 2:
        return None
    steps = np.linalg.norm(np.diff(vectors.astype(np.float64), axis=0), axis=1)
    distance = float(np.linalg.norm(vectors[-1].astype(np.float64) - vectors[0]))
    return float(steps.sum() / distance) if distance > 0 else None


def regime_stats(store: Store, run_ids: list[int]) -> list[RegimeStats]:
    found = []
    for run_id in run_ids:
        run = store.load(run_id, with_params=False)
        snapshots = store.load_snapshots(run_id)
        vectors = np.stack([params_vector(s.params) for s in snapshots]) if snapshots else None
        ratio = None if vectors is None else path_ratio(vectors)
        final = run.epochs[-1].train_cost if run.epochs else None
        found.append(
            RegimeStats(
                run_id, run.regime, run.batch_size, run.steps, step_noise(run), ratio, final
            )
        )
    return sorted(found, key=lambda s: -s.batch_size)
