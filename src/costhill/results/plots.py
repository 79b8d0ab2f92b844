"""The article's figure: cost curves of stored runs, per step (faint) and per epoch (bold).

    costhill plot 1 2 3 --out costs.png --x epoch

Figures are drawn from stored runs only (``Run`` objects from the store), never during training.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..errors import ConfigError
from ..records import Run
from .compare import NOT_APPLICABLE, arm_key

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
    out = check_image_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _figure(width: float, height: float, **grid: Any) -> tuple[Any, Any]:
    """A figure and its axes (``grid``: ``plt.subplots``'s nrows, ncols, height_ratios)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), layout="constrained", **grid)


def check_image_path(out: str | Path) -> Path:
    """``out`` as a path, where its suffix names a format matplotlib writes; a ConfigError
    naming ``out`` where it does not, before anything is computed or drawn.

    Examples:
      >>> check_image_path("costs.png").name
      'costs.png'
      >>> check_image_path("costs.txt")
      Traceback (most recent call last):
      ...
      costhill.errors.ConfigError: out costs.txt: '.txt' is not an image format matplotlib ...
    """
    from matplotlib.backend_bases import FigureCanvasBase

    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    suffix = Path(out).suffix.lower()
    if suffix.lstrip(".") not in formats:
        wrong = (
            f"'{suffix}' is not an image format matplotlib writes"
            if suffix
            else "no suffix to name its image format by"
        )
        raise ConfigError(f"out {out}: {wrong}; formats: {', '.join(formats)}")
    return Path(out)


def _save(fig: Any, out: str | Path | Any, *, svg_twin: bool = False) -> list[Path]:
    """Write ``fig`` to ``out`` (by suffix), and beside a PNG its SVG twin when asked; a file
    object (the report's inline images) gets a PNG."""
    import matplotlib.pyplot as plt

    if hasattr(out, "write"):
        fig.savefig(out, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        return []
    out = check_image_path(out)
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
    fig, (ax, notes_ax) = _figure(9, 8.2, nrows=2, height_ratios=[12, 1.5])
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


def plot_diagnostics(found: list[Any], out: str | Path) -> Path:
    """Per layer, each initializer's activation std and log10 update ratio, at each step shown
    (``results.diagnostics.Diagnosis`` objects)."""
    fig, (std_ax, ratio_ax) = _figure(11, 4.5, ncols=2)
    inits = list(dict.fromkeys(d.init for d in found))
    for d in found:
        layers = [layer.name for layer in d.layers]
        style = "-" if d.step == 0 else "--"
        color = f"C{inits.index(d.init) % 10}"
        std_ax.plot(
            layers,
            [layer.activation_std for layer in d.layers],
            style,
            marker="o",
            color=color,
            label=f"{d.init}, step {d.step}",
        )
        ratios = [layer.log10_update_ratio for layer in d.layers]
        ratio_ax.plot(
            layers,
            [np.nan if r is None or not np.isfinite(r) else r for r in ratios],
            style,
            marker="o",
            color=color,
            label=f"{d.init}, step {d.step}",
        )
    std_ax.set_yscale("log")
    std_ax.set_title("activation std per layer")
    ratio_ax.axhline(-3, color="grey", linestyle=":", label="≈ −3: the usual healthy value")
    ratio_ax.set_title("log10 update / parameter per layer")
    for ax in (std_ax, ratio_ax):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, out)[0]


def _hill_panel(ax: Any, hill: Any) -> None:
    surface = np.asarray(hill.surface, dtype=np.float64)
    finite = surface[np.isfinite(surface)]
    levels = np.geomspace(max(float(finite.min()), 1e-6), float(finite.max()) * 1.0001 + 1e-6, 25)
    ax.contourf(hill.alphas, hill.betas, surface, levels=levels, cmap="viridis")
    for i, path in enumerate(hill.paths):
        coords = np.asarray(path.coords)
        ax.plot(coords[:, 0], coords[:, 1], "-o", color=f"C{i % 10}", markersize=2.5, linewidth=1.5)
        ax.plot(*coords[-1], "*", color=f"C{i % 10}", markersize=11, markeredgecolor="black")
    ax.plot(0, 0, "s", color="white", markeredgecolor="black")
    ax.set_xlabel(hill.axis_labels[0], fontsize=8)
    ax.set_ylabel(hill.axis_labels[1], fontsize=8)
    ax.set_title(f"their paths on one hill ({hill.plane}, from one start)")


def plot_regimes(runs: list[Run], stats: list[Any], hill: Any, out: str | Path) -> Path:
    """The article's slide from real runs: full-batch, mini-batch and stochastic descent at equal
    epochs and at equal wall-clock, and (with snapshots) their paths on one shared hill."""
    fig, axes = _figure(13, 9.5, nrows=2, ncols=2)
    by_epoch, by_seconds, hill_ax, text_ax = axes.ravel()
    for i, run in enumerate(runs):
        if not run.step_costs:
            continue
        color = f"C{i % 10}"
        for ax, axis in ((by_epoch, "epoch"), (by_seconds, "seconds")):
            positions, ends = step_axis(run, axis)
            bx, by = _block_means(positions, run.all_step_costs().astype(np.float64))
            ax.plot(bx, by, color=color, alpha=0.3, linewidth=0.6)
            ax.plot(
                ends,
                [e.mean_step_cost for e in run.epochs[: len(ends)]],
                color=color,
                linewidth=2,
                label=run_label(run),
            )
    bold = [e.mean_step_cost for run in runs for e in run.epochs if np.isfinite(e.mean_step_cost)]
    for ax, label in ((by_epoch, "epoch"), (by_seconds, "training seconds")):
        ax.set_xlabel(label)
        ax.set_ylabel("cost (each step faint, each epoch's mean bold)")
        ax.set_yscale("log")
        if bold:  # single examples' costs span decades: keep the means in view
            ax.set_ylim(min(bold) / 4, max(bold) * 4)
        ax.grid(True, alpha=0.3)
    by_epoch.set_title("at equal epochs")
    by_seconds.set_title("at equal wall-clock")
    by_epoch.legend(fontsize=7)
    if hill is not None:
        _hill_panel(hill_ax, hill)
    else:
        hill_ax.axis("off")
        hill_ax.text(0.5, 0.5, "no snapshots: train with --snapshots K for the paths", ha="center")
    text_ax.axis("off")
    lines = ["run   regime        batch   step-to-step std   path / distance"]
    for s in stats:
        noise = "—" if s.step_noise is None else f"{s.step_noise:.3g}"
        ratio = "—" if s.path_ratio is None else f"{s.path_ratio:.3f}"
        lines.append(f"{s.run_id:<5} {s.regime:<13} {s.batch_size:<7} {noise:<18} {ratio}")
    text_ax.text(0, 1, "\n".join(lines), family="monospace", fontsize=9, va="top")
    text_ax.set_title("zig-zag, measured")
    return _save(fig, out, svg_twin=True)[0]


def plot_accuracy(runs: list[Run], out: str | Path) -> Path:
    """Train, validation and test accuracy per epoch; the best validation epoch and the
    generalization gap (train − validation) there are marked."""
    fig, ax = _figure(9, 5.5)
    for i, run in enumerate(runs):
        color, epochs = f"C{i % 10}", [e.epoch for e in run.epochs]
        for split, style in (("train", ":"), ("val", "-"), ("test", "--")):
            values = [getattr(e, f"{split}_accuracy") for e in run.epochs]
            if any(v is not None for v in values):
                ax.plot(
                    epochs,
                    [np.nan if v is None else v for v in values],
                    style,
                    color=color,
                    label=f"{run_label(run)} · {split}" if split == "val" else None,
                )
        scored = [e for e in run.epochs if e.val_accuracy is not None]
        if scored:
            best = max(scored, key=lambda e: e.val_accuracy or 0.0)
            gap = best.train_accuracy - (best.val_accuracy or 0.0)
            ax.plot(
                best.epoch,
                best.val_accuracy,
                "*",
                color=color,
                markersize=13,
                markeredgecolor="black",
            )
            ax.annotate(
                f"gap {gap:+.3f}",
                (best.epoch, best.val_accuracy),
                fontsize=7,
                textcoords="offset points",
                xytext=(4, -12),
            )
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (train dotted, validation solid, test dashed)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, out)[0]


class LrPoint(NamedTuple):
    """One arm on the learning-rate plot: its optimizer, rate, and its seeds' final validation
    accuracy (mean, std)."""

    optimizer: str
    lr: float
    mean: float
    std: float


def lr_points(rows: list[dict[str, Any]]) -> list[LrPoint]:
    """Each arm of ``rows`` (summary rows, grouped by their config but for the seed) as an
    ``LrPoint``; where several arms share an optimizer and a rate (they differ in another
    setting), the best of them, as tuning over that setting would keep.

    >>> row = {"optimizer": "sgd", "lr": 0.1, "init": "a", "seed": 0, "val_accuracy": 0.5}
    >>> seed_1, init_b = {"seed": 1, "val_accuracy": 0.7}, {"init": "b", "val_accuracy": 0.2}
    >>> rows = [row, row | seed_1, row | init_b]
    >>> [(p.lr, round(p.mean, 3)) for p in lr_points(rows)]  # init a's two seeds beat init b
    [(0.1, 0.6)]
    """
    arms: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["val_accuracy"] is not None:
            config = row.get("config") or {k: v for k, v in row.items() if k != "val_accuracy"}
            arms.setdefault(arm_key(config), []).append(row)
    best: dict[tuple[str, float], LrPoint] = {}
    for members in arms.values():
        values = np.array([m["val_accuracy"] for m in members], dtype=np.float64)
        point = LrPoint(
            members[0]["optimizer"],
            float(members[0]["lr"]),
            float(values.mean()),
            float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        )
        key = (point.optimizer, point.lr)
        if key not in best or point.mean > best[key].mean:
            best[key] = point
    return sorted(best.values())


def plot_lr_sensitivity(points: list[LrPoint], out: str | Path, *, pruned: list[LrPoint]) -> Path:
    """Final validation accuracy against the learning rate, per optimizer (as in DeepOBS), each
    arm's mean ± std over its seeds; ``pruned`` arms as hollow markers where they stopped."""
    fig, ax = _figure(8, 5)
    names = sorted({p.optimizer for p in points} | {p.optimizer for p in pruned})
    for i, name in enumerate(names):
        own = [p for p in points if p.optimizer == name]
        color = f"C{i % 10}"
        if own:
            ax.errorbar(
                [p.lr for p in own],
                [p.mean for p in own],
                yerr=[p.std for p in own],
                marker="o",
                capsize=3,
                color=color,
                label=name,
            )
        stopped = [p for p in pruned if p.optimizer == name]
        if stopped:
            ax.scatter(
                [p.lr for p in stopped],
                [p.mean for p in stopped],
                facecolors="none",
                edgecolors=color,
                label=f"{name}, pruned (where it stopped)",
            )
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("final validation accuracy (mean ± std over seeds)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out)[0]


def plot_confusion(confusion: np.ndarray, names: list[str], out: str | Path) -> Path:
    """A confusion matrix with each class's accuracy in its row's label."""
    fig, ax = _figure(8, 7)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    ax.imshow(confusion, cmap="Blues")
    for (row, col), count in np.ndenumerate(confusion):
        ax.text(col, row, str(count), ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(
        range(len(names)),
        [f"{n} ({a:.0%})" for n, a in zip(names, per_class, strict=True)],
        fontsize=8,
    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (per-class accuracy)")
    return _save(fig, out)[0]


def plot_misclassified(
    images: np.ndarray, labels: Any, guesses: Any, names: list[str], out: Any
) -> Path | None:
    """A grid of test images with their true and predicted labels; ``out`` a path or a file
    object (which gets a PNG)."""
    columns = 8
    rows = max(1, int(np.ceil(len(images) / columns)))
    fig, axes = _figure(columns * 1.4, rows * 1.7, nrows=rows, ncols=columns)
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, image, label, guess in zip(
        np.atleast_1d(axes).ravel(), images, labels, guesses, strict=False
    ):
        ax.imshow(image, cmap="gray")
        ax.set_title(f"{names[label]}\n→ {names[guess]}", fontsize=6.5)
    written = _save(fig, out)
    return written[0] if written else None


class ParallelAxis(NamedTuple):
    """One parallel-coordinates axis: its label, each line's position on it, and tick labels
    where the positions are not the values themselves (``(position, text)`` pairs)."""

    label: str
    positions: list[float]
    ticks: list[tuple[float, str]]


def parallel_axis(name: str, raw: list[Any]) -> ParallelAxis:
    """An axis for setting ``name`` given each line's value: numbers as they are (on a log scale
    where all are positive and span a decade, its ticks in the values' own units), anything else
    as evenly spaced named levels. A value that is None (an optimizer's hyperparameter on an arm
    of another optimizer) sits at an ``n/a`` tick below the numbers, so a conditional setting
    keeps its numeric scale.

    >>> parallel_axis("opt.b1", [0.9, 0.99, None]).positions[2] < 0.9
    True
    >>> parallel_axis("optimizer", ["sgd", "adam"]).ticks
    [(0.0, 'adam'), (1.0, 'sgd')]
    >>> axis = parallel_axis("lr", [1e-4, 3e-3, 1e-2])
    >>> axis.label, [text for _, text in axis.ticks]
    ('lr (log scale)', ['0.0001', '0.001', '0.01'])
    """
    present = [v for v in raw if v is not None]
    numeric = bool(present) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in present
    )
    if not numeric:
        levels = sorted({NOT_APPLICABLE if v is None else str(v) for v in raw})
        positions = [float(levels.index(NOT_APPLICABLE if v is None else str(v))) for v in raw]
        return ParallelAxis(name, positions, [(float(i), t) for i, t in enumerate(levels)])
    values = np.array(present, dtype=np.float64)
    log = bool((values > 0).all() and values.max() / values.min() >= 10)
    if log:
        values, name = np.log10(values), f"{name} (log scale)"
    low, high = float(values.min()), float(values.max())
    ticks = _number_ticks(low, high, log=log)
    if len(present) == len(raw):
        return ParallelAxis(name, values.tolist(), ticks if log else [])
    missing = low - 0.2 * ((high - low) or 1.0)
    found = iter(values.tolist())
    positions = [missing if v is None else next(found) for v in raw]
    return ParallelAxis(name, positions, [(missing, NOT_APPLICABLE), *ticks])


def _number_ticks(low: float, high: float, *, log: bool) -> list[tuple[float, str]]:
    """Ticks at both ends and (log scale) at each whole decade between, or (linear) the middle;
    labelled in the values' units."""
    if high <= low:
        return [(low, f"{10**low if log else low:.3g}")]
    inside = (
        [float(d) for d in range(math.ceil(low), math.floor(high) + 1)]
        if log
        else [(low + high) / 2]
    )
    room = 0.1 * (high - low)  # a tick too near an end would print over it
    places = [low, *(t for t in inside if low + room < t < high - room), high]
    return [(t, f"{10**t if log else t:.3g}") for t in places]


class ParallelLines(NamedTuple):
    """A parallel-coordinates figure as data: each column's label and ticks (heights in [0, 1]),
    each arm that ran its course as its heights across every column (the settings, then the mean
    best validation accuracy) with that value, and each pruned arm across the settings alone
    (its accuracy, where it stopped, is not one to rank beside the others')."""

    columns: list[tuple[str, list[tuple[float, str]]]]
    finished: list[tuple[list[float], float]]
    pruned: list[list[float]]


def parallel_lines(arms: list[Any], settings: list[str]) -> ParallelLines:
    """``arms`` (``results.studies.Arm``: ``params``, ``value``, ``pruned``) as
    ``ParallelLines`` over the ``settings`` that vary."""
    columns: list[tuple[str, list[tuple[float, str]]]] = []
    heights: list[list[float]] = [[] for _ in arms]
    for name in settings:
        axis = parallel_axis(name, [a.params.get(name) for a in arms])
        low, span = min(axis.positions), (max(axis.positions) - min(axis.positions)) or 1.0
        ticks = axis.ticks or _number_ticks(min(axis.positions), max(axis.positions), log=False)
        columns.append((axis.label, [((p - low) / span, text) for p, text in ticks]))
        for line, position in zip(heights, axis.positions, strict=True):
            line.append((position - low) / span)
    done = [(line, a.value) for line, a in zip(heights, arms, strict=True) if not a.pruned]
    if done:
        low, high = min(v for _, v in done), max(v for _, v in done)
        span = (high - low) or 1.0
        ticks = _number_ticks(low, high, log=False)
        columns.append(("mean best val acc", [((t - low) / span, text) for t, text in ticks]))
        done = [([*line, (v - low) / span], v) for line, v in done]
    stopped = [line for line, a in zip(heights, arms, strict=True) if a.pruned]
    return ParallelLines(columns, done, stopped)


def plot_parallel(arms: list[Any], settings: list[str], out: str | Path, *, title: str) -> Path:
    """Parallel coordinates of a sweep's arms (``parallel_lines``): one vertical axis per
    setting that varies, then the mean best validation accuracy over the arm's seeds, each arm
    that ran its course coloured by it (the best drawn last, on top); pruned arms in grey,
    across the settings alone."""
    import matplotlib

    lines = parallel_lines(arms, settings)
    fig, ax = _figure(max(6.0, 2.2 * len(lines.columns)), 5.5)
    cmap = matplotlib.colormaps["viridis"]
    values = [v for _, v in lines.finished]
    norm = matplotlib.colors.Normalize(min(values, default=0.0), max(values, default=1.0))
    for i, heights in enumerate(lines.pruned):
        label = f"pruned ({len(lines.pruned)} arms; never chosen)" if i == 0 else None
        ax.plot(range(len(heights)), heights, color="0.75", linewidth=0.9, zorder=1, label=label)
    for heights, value in sorted(lines.finished, key=lambda line: line[1]):
        ax.plot(range(len(heights)), heights, color=cmap(norm(value)), linewidth=1.6, zorder=2)
    for x, (_, ticks) in enumerate(lines.columns):
        ax.axvline(x, color="0.2", linewidth=0.8, zorder=3)
        for height, text in ticks:
            ax.plot([x - 0.03, x], [height, height], color="0.2", linewidth=0.8, zorder=3)
            ax.text(x - 0.05, height, text, ha="right", va="center", fontsize=7.5, zorder=4)
    ax.set_xticks(range(len(lines.columns)), [label for label, _ in lines.columns])
    ax.set_xlim(-0.6, len(lines.columns) - 0.8)
    ax.set_ylim(-0.05, 1.05)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    if lines.pruned:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), frameon=False, fontsize=8)
    ax.set_title(title)
    fig.colorbar(
        matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap),
        ax=ax,
        label="mean best validation accuracy over seeds",
    )
    return _save(fig, out)[0]


def arm_of(run: Run) -> str:
    """A run's arm: its config less its seed, as a short label."""
    cfg = run.config
    size = "N" if run.regime == "full-batch" else str(run.batch_size)
    return f"{cfg.init} · {cfg.optimizer} lr={cfg.lr:g} · B={size}"


def plot_cost_bands(runs: list[Run], out: str | Path, *, x: str = "epoch") -> Path:
    """Each arm's mean cost per epoch over its seeds, bold, with a ±1 std band, and each seed's
    per-step trace faint (``costhill plot costs --band``)."""
    if x not in ("epoch", "seconds"):
        raise ValueError(f"x must be epoch or seconds for bands, not {x!r}")
    fig, ax = _figure(9, 5.5)
    arms: dict[str, list[Run]] = {}
    for run in runs:
        arms.setdefault(arm_of(run), []).append(run)
    for i, (arm, members) in enumerate(arms.items()):
        color = f"C{i % 10}"
        for run in members:
            if run.step_costs:
                positions, _ = step_axis(run, x)
                bx, by = _block_means(positions, run.all_step_costs().astype(np.float64))
                ax.plot(bx, by, color=color, alpha=0.12, linewidth=0.5)
        epochs = min(len(r.epochs) for r in members)
        if not epochs:
            continue
        costs = np.array([[e.mean_step_cost for e in r.epochs[:epochs]] for r in members])
        where = (
            np.arange(1, epochs + 1)
            if x == "epoch"
            else np.mean([np.cumsum([e.seconds for e in r.epochs[:epochs]]) for r in members], 0)
        )
        mean, std = costs.mean(axis=0), costs.std(axis=0)
        ax.fill_between(where, mean - std, mean + std, color=color, alpha=0.25)
        ax.plot(where, mean, color=color, linewidth=2.2, label=f"{arm} ({len(members)} seeds)")
    ax.set_xlabel({"epoch": "epoch", "seconds": "training seconds"}[x])
    ax.set_ylabel("cost: mean over seeds ± std (bold), each seed's steps (faint)")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out)[0]
