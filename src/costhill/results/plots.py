"""The article's figure: cost curves of stored runs, per step (faint) and per epoch (bold).

    costhill plot 1 2 3 --out costs.png --x epoch

Figures are drawn from stored runs only (``Run`` objects from the store), never during training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..records import Run

X_AXES = ("step", "epoch", "seconds")
MAX_POINTS = 4000  # per-step curves longer than this are drawn as block means


def run_label(run: Run) -> str:
    cfg = run.config
    size = "N" if run.regime == "full-batch" else str(run.batch_size)
    label = (
        f"run {run.run_id}: {cfg.init} · {cfg.optimizer} lr={cfg.lr:g} · {run.regime} (B={size})"
    )
    if run.status != "finished":
        label += f" [{run.status}]"
    return label


def step_axis(run: Run, x: str) -> tuple[np.ndarray, np.ndarray]:
    """The x position of every recorded step, and of every epoch's end, on axis ``x``."""
    counts = np.array([len(c) for c in run.step_costs], dtype=np.int64)
    ends = np.cumsum(counts)
    steps = np.arange(1, int(ends[-1]) + 1 if len(ends) else 1, dtype=np.float64)
    if x == "step":
        return steps, ends.astype(np.float64)
    # Within an epoch, steps are spread evenly over the epoch's length on the chosen axis.
    lengths = (
        np.ones(len(counts))
        if x == "epoch"
        else np.array([e.seconds for e in run.epochs[: len(counts)]])
    )
    starts = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    per_epoch = max(run.steps_per_epoch, 1)
    positions = np.concatenate(
        [starts[i] + lengths[i] * np.arange(1, c + 1) / per_epoch for i, c in enumerate(counts)]
    )
    return positions, starts + lengths * counts / per_epoch


def _block_means(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(y) <= MAX_POINTS:
        return x, y
    block = int(np.ceil(len(y) / MAX_POINTS))
    usable = len(y) // block * block
    return (
        x[:usable].reshape(-1, block).mean(axis=1),
        y[:usable].reshape(-1, block).mean(axis=1),
    )


def plot_costs(
    runs: list[Run], out: str | Path, *, x: str = "step", log_y: bool = False, title: str = ""
) -> Path:
    """Draw the cost curves of ``runs`` into ``out`` (PNG, PDF or SVG, by suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if x not in X_AXES:
        raise ValueError(f"x must be one of {X_AXES}, not {x!r}")
    fig, ax = plt.subplots(figsize=(9, 5.5), layout="constrained")
    for i, run in enumerate(runs):
        color = f"C{i % 10}"
        if not run.step_costs:
            continue
        positions, epoch_ends = step_axis(run, x)
        costs = run.all_step_costs().astype(np.float64)
        bx, by = _block_means(positions, costs)
        ax.plot(bx, by, color=color, alpha=0.25, linewidth=0.7)
        epoch_costs = [e.mean_step_cost for e in run.epochs[: len(epoch_ends)]]
        ax.plot(
            epoch_ends,
            epoch_costs,
            color=color,
            linewidth=2.2,
            marker="o" if len(epoch_ends) < 40 else None,
            markersize=3,
            label=run_label(run),
        )
        if run.diverged_step is not None:
            ax.axvline(
                positions[min(run.diverged_step, len(positions)) - 1],
                color=color,
                linestyle=":",
                linewidth=1,
            )
    ax.set_xlabel(
        {"step": "step (parameter update)", "epoch": "epoch", "seconds": "training seconds"}[x]
    )
    ax.set_ylabel("cost (cross-entropy)")
    if log_y:
        ax.set_yscale("log")
    ax.set_title(title or "Cost per step (faint) and mean cost per epoch (bold)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
