"""The article's figure: cost curves of stored runs, per step (faint) and per epoch (bold).

    costhill plot 1 2 3 --out costs.png --x epoch

Figures are drawn from stored runs only (``Run`` objects from the store), never during training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


def _figure(width: float, height: float) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), layout="constrained")


def _save(fig: Any, out: str | Path, *, svg_twin: bool = False) -> list[Path]:
    """Write ``fig`` to ``out`` (by suffix), and beside a PNG its SVG twin when asked."""
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    written = [out]
    if svg_twin and out.suffix.lower() == ".png":
        fig.savefig(out.with_suffix(".svg"))
        written.append(out.with_suffix(".svg"))
    plt.close(fig)
    return written


def plot_hill(hill: Any, out: str | Path) -> list[Path]:
    """The hill's contours with every run's path on them (``results.hill.Hill``): PNG and SVG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, notes_ax) = plt.subplots(
        2, 1, figsize=(9, 8.2), layout="constrained", height_ratios=[12, 1.5]
    )
    surface = np.asarray(hill.surface, dtype=np.float64)
    finite = surface[np.isfinite(surface)]
    low, high = float(finite.min()), float(finite.max())
    levels = np.geomspace(max(low, 1e-6), max(high, low * 1.0001 + 1e-6), 30)
    filled = ax.contourf(hill.alphas, hill.betas, surface, levels=levels, cmap="viridis")
    ax.contour(
        hill.alphas,
        hill.betas,
        surface,
        levels=levels[::3],
        colors="white",
        linewidths=0.4,
        alpha=0.5,
    )
    fig.colorbar(filled, ax=ax, label=f"training cost (cross-entropy, {hill.subset:,} examples)")
    for i, path in enumerate(hill.paths):
        coords = np.asarray(path.coords)
        color = f"C{(i + 1) % 10}"
        label = path.label
        if path.sharpness:
            label += (
                f" · λmax {path.sharpness['top_eigenvalue']:.3g}, "
                f"tr H {path.sharpness['trace']:.3g}"
            )
        ax.plot(coords[:, 0], coords[:, 1], "-", color=color, linewidth=1.8, label=label)
        ax.plot(coords[:, 0], coords[:, 1], "o", color=color, markersize=3)
        bad = np.asarray(path.disagree, dtype=bool)
        if bad.any():
            ax.plot(coords[bad, 0], coords[bad, 1], "x", color="red", markersize=7)
        ax.plot(*coords[-1], "*", color=color, markersize=13, markeredgecolor="black")
    ax.plot(
        0,
        0,
        "s",
        color="white",
        markeredgecolor="black",
        markersize=7,
        label=f"origin: {hill.origin_label}",
    )
    ax.set_xlabel(hill.axis_labels[0])
    ax.set_ylabel(hill.axis_labels[1])
    ax.set_title(f"The cost hill ({hill.plane} plane): paths of {len(hill.paths)} run(s)")
    ax.legend(fontsize=7, loc="upper right")
    notes = [
        f"✗: surface and true cost differ by more than {100 * hill.tolerance:.0f}% "
        "(the path is off the plane there)"
    ] + hill.warnings
    notes_ax.axis("off")
    notes_ax.text(0, 1, "\n".join(notes[:6]), fontsize=6.5, va="top", wrap=True)
    return _save(fig, out, svg_twin=True)


def plot_lines(lines: list[Any], out: str | Path) -> list[Path]:
    """The cost along straight lines of parameter space (``results.hill.lines``)."""
    fig, ax = _figure(8, 5)
    for i, line in enumerate(lines):
        ax.plot(line.alphas, line.costs, color=f"C{i % 10}", linewidth=2, label=line.label)
    for alpha in (0.0, 1.0):
        ax.axvline(alpha, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("α (0: the first point, 1: the second)")
    ax.set_ylabel("training cost (cross-entropy)")
    ax.set_yscale("log")
    ax.set_title("The cost along straight lines (Goodfellow et al. 2015)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out, svg_twin=True)
