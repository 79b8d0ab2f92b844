"""One self-contained HTML report of stored runs: the compare table, the curves, the hill (with a
3-D view), the initializers' statistics and the predictions.

    costhill report --sweep hill --out report.html
    costhill report 1 2 3 --out report.html

Every figure and script is inline (Plotly's JavaScript once, in the page), so the file opens with
no network. The store is opened read-only, so a sweep writing it is never blocked. Past
``PER_RUN_LIMIT`` runs the curves are aggregated (mean and band across seeds per arm) rather
than drawn one per run, so a 1,000-run report stays one file a browser opens.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, StoreError
from ..records import Run
from ..store import Store
from .compare import (
    AtTheEdge,
    PruneDecision,
    decided_on_noise,
    edge_notes,
    edge_text,
    noise_rule,
    pruned_by,
)

PER_RUN_LIMIT = 30  # curves drawn one per run up to this many runs; aggregated past it
HILL_RUN_LIMIT = 8  # runs with snapshots put on the report's hill
HILL_GRID = 25
HILL_SUBSET = 2_000
MAX_TABLE_ROWS = 200


@dataclass
class ReportSummary:
    path: Path
    runs: int
    seconds: float
    bytes: int
    sections: list[str]


def write_report(
    store: Store,
    out: str | Path,
    *,
    run_ids: list[int] | None = None,
    sweep: str | None = None,
    data_dir: str | None = None,
    with_hill: bool = True,
    with_predictions: bool = True,
) -> ReportSummary:
    """Write the report of ``run_ids`` (or of ``sweep``'s runs, or of every run) to ``out``."""
    started = time.perf_counter()
    rows = _rows(store, run_ids, sweep)
    runs = [store.load(r["run_id"], with_params=False) for r in rows]
    sections: list[tuple[str, str]] = [("Runs", _runs_table(rows))]
    if sweep is not None:
        sections.append(("Compare", _compare_section(store, sweep)))
        sections.append(("Search", _search_section(store, sweep)))
    sections.append(("Cost curves", _curves_section(runs)))
    sections.append(("Accuracy", _accuracy_section(runs)))
    optional: list[tuple[str, Callable[[], str], bool]] = [
        ("The cost hill", lambda: _hill_section(store, rows, data_dir), with_hill),
        ("Initializers", lambda: _diagnostics_section(runs, data_dir), True),
        ("Predictions", lambda: _predictions_section(store, rows, data_dir), with_predictions),
    ]
    for title, build, wanted in optional:
        if wanted:
            body = build()
            if body:
                sections.append((title, body))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    title = f"costhill report: {sweep or f'{len(runs)} runs'}"
    out.write_text(_page(title, sections, store), encoding="utf-8")
    return ReportSummary(
        out, len(runs), time.perf_counter() - started, out.stat().st_size, [s[0] for s in sections]
    )


def _rows(store: Store, run_ids: list[int] | None, sweep: str | None) -> list[dict[str, Any]]:
    if run_ids:
        found = {r["run_id"]: r for r in store.list_runs()}
        missing = [i for i in run_ids if i not in found]
        if missing:
            raise ConfigError(f"runs {missing}: not in {store.path}")
        return [found[i] for i in run_ids]
    rows = store.sweep_runs(sweep) if sweep else store.list_runs()
    if not rows:
        raise ConfigError(f"{'sweep ' + repr(sweep) if sweep else 'store'}: no runs to report")
    return rows


# -- the page ----------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1150px; color: #222; }
h1 { font-size: 1.5rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.8rem; margin: 0.5rem 0; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
th { background: #f4f4f4; } td.l, th.l { text-align: left; }
.note { color: #555; font-size: 0.85rem; } .warn { color: #9a5b00; font-size: 0.85rem; }
nav a { margin-right: 1rem; }
"""


def _page(title: str, sections: list[tuple[str, str]], store: Store) -> str:
    from plotly.offline import get_plotlyjs

    anchors = " ".join(f'<a href="#s{i}">{html.escape(t)}</a>' for i, (t, _) in enumerate(sections))
    body = "\n".join(
        f'<h2 id="s{i}">{html.escape(t)}</h2>\n{content}' for i, (t, content) in enumerate(sections)
    )
    made = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    return (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        f"<h1>{html.escape(title)}</h1><p class='note'>from {html.escape(str(store.path))}, "
        f"written {made} UTC by costhill</p><nav>{anchors}</nav>{body}</body></html>"
    )


def _figure_html(fig: Any, div_id: str) -> str:
    return str(fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id))


def _table(header: list[str], rows: list[list[Any]], left: int = 1) -> str:
    def cell(tag: str, i: int, value: Any) -> str:
        text = "—" if value is None else (f"{value:.4f}" if isinstance(value, float) else value)
        return f"<{tag}{' class=l' if i < left else ''}>{html.escape(str(text))}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v) for i, v in enumerate(r)) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _label(run: Run | dict[str, Any]) -> str:
    if isinstance(run, dict):
        cfg, regime, batch, run_id = run["config"], run["regime"], run["batch_size"], run["run_id"]
        return (
            f"run {run_id}: {cfg['init']} · {cfg['optimizer']} lr={cfg['lr']:g} · {regime} "
            f"(B={batch})"
        )
    return _label(
        {
            "config": run.config.to_dict(),
            "regime": run.regime,
            "batch_size": run.batch_size,
            "run_id": run.run_id,
        }
    )


# -- sections ----------------------------------------------------------------------------------


def _runs_table(rows: list[dict[str, Any]]) -> str:
    from .exports import run_table

    shown = rows[:MAX_TABLE_ROWS]
    headers, cells = run_table(shown)
    table = _table(headers, cells, left=6)
    more = len(rows) - len(shown)
    note = f"<p class='note'>and {more} more runs (costhill runs lists them)</p>" if more else ""
    return table + note


def _compare_section(store: Store, sweep: str) -> str:
    from .compare import compare

    result = compare(store, sweep)
    arms = sorted(result.rows, key=lambda r: -(r.best_val.mean or 0.0))[:MAX_TABLE_ROWS]
    table = _table(
        ["arm", "seeds", "best val acc", "final test acc", "test at best val", "diverged"],
        [
            [
                r.label,
                len(r.seeds),
                r.best_val.text(),
                r.final_test.text(),
                r.test_at_best_val.text(),
                r.diverged,
            ]
            for r in arms
        ],
    )
    tuned = _table(
        ["group", "chosen arm (on validation)", "best val acc", "test acc (reported)"],
        [[c.group, c.chosen, c.best_val.text(), c.test_at_best_val.text()] for c in result.choices],
        left=2,
    )
    return (
        table + f"<p class='note'>tuned within each {html.escape(result.by)} on validation; "
        "test is reported, never used to choose</p>"
        + tuned
        + _edges_note(result.edges)
        + _decisions_note(result.decisions)
    )


def _edges_note(edges: list[AtTheEdge]) -> str:
    return "".join(
        f"<p class='note'>{html.escape(words)}: "
        + "; ".join(html.escape(edge_text(edge)) for edge in found)
        + "</p>"
        for words, found in edge_notes(edges)
    )


def _decisions_note(decisions: list[PruneDecision]) -> str:
    """The pruned arms stopped within the seeds' noise, against the arm chosen in their group."""
    judged, noisy = decided_on_noise(decisions)
    if not judged:
        return ""
    note = (
        f"<p class='note'>pruning decisions: {len(noisy)} of {judged} pruned arms were stopped "
        f"within the seeds' noise ({html.escape(noise_rule(decisions))})</p>"
    )
    if not noisy:
        return note
    return note + _table(
        ["group", "pruned arm", "at epoch", "chosen arm", "its lead there", "seeds"],
        [
            [d.group, d.pruned, d.epoch, d.kept, f"{d.lead:+.4f} ± {d.standard_error:.4f}", d.seeds]
            for d in noisy[:MAX_TABLE_ROWS]
        ],
        left=4,
    )


def _search_section(store: Store, sweep: str) -> str:
    """The sweep's arms on parallel coordinates (each varying setting, then the mean best
    validation accuracy), each setting's importance (fANOVA), and the arms pruned."""
    import plotly.graph_objects as go

    from .studies import conditional_importance, importance, sweep_arms

    arms, varying = sweep_arms(store, sweep)
    dimensions = [_dimension(key, [a.params.get(key) for a in arms]) for key in varying]
    label = "mean best val acc" + (
        " (pruned: of its epochs)" if any(a.pruned for a in arms) else ""
    )
    dimensions.append({"label": label, "values": [a.value for a in arms]})
    fig = go.Figure(go.Parcoords(line=_pruned_grey(arms), dimensions=dimensions))
    fig.update_layout(height=420, margin={"l": 60, "r": 40, "t": 40, "b": 30})
    parts = [_figure_html(fig, "search-parallel")]
    try:
        shares = importance(store, sweep)
    except StoreError as err:  # one arm, or scikit-learn missing: say so, draw the rest
        parts.append(f"<p class='note'>importance: {html.escape(str(err))}</p>")
    else:
        rows = [[k, f"{v:.3f}"] for k, v in shares.items()]
        for optimizer, among in conditional_importance(store, sweep).items():
            rows += [[f"{k} (within optimizer={optimizer})", f"{v:.3f}"] for k, v in among.items()]
        finished = sum(not a.pruned for a in arms)
        parts.append(_table(["setting", f"importance (fANOVA over {finished} arms)"], rows))
    stopped = [a for a in arms if a.pruned]
    if stopped:
        parts.append(
            f"<p class='note'>{len(stopped)} arms pruned (stopped early by "
            f"{html.escape(pruned_by(store.sweep_pruning(sweep)))}; never compared or chosen)</p>"
            + _table(
                ["arm", "epochs reached", "mean val acc there"],
                [
                    [
                        " · ".join(f"{k}={v}" for k, v in a.params.items()),
                        max(a.per_epoch, default=0),
                        f"{a.per_epoch[max(a.per_epoch)]:.4f}" if a.per_epoch else "—",
                    ]
                    for a in stopped[:MAX_TABLE_ROWS]
                ],
            )
        )
    return "\n".join(parts)


def _pruned_grey(arms: list[Any]) -> dict[str, Any]:
    """Parallel coordinates' line colours: Viridis over the arms that ran their course, grey
    (a band below that scale) for the pruned, whose accuracy is not one to rank with theirs."""
    from plotly.colors import sequential

    finished = [a.value for a in arms if not a.pruned]
    low = min(finished, default=0.0)
    span = (max(finished, default=0.0) - low) or 0.01
    below = low - 0.05 * span
    grey_to = (low - below) / (low + span - below)
    viridis = sequential.Viridis
    scale = [[0.0, "#c8c8c8"], [grey_to * 0.999, "#c8c8c8"]] + [
        [grey_to + (1 - grey_to) * i / (len(viridis) - 1), c] for i, c in enumerate(viridis)
    ]
    return {
        "color": [below if a.pruned else a.value for a in arms],
        "colorscale": scale,
        "cmin": below,
        "cmax": low + span,
        "showscale": True,
        "colorbar": {"title": "mean best val acc"},
    }


def _dimension(key: str, values: list[Any]) -> dict[str, Any]:
    """One Plotly parallel-coordinates axis, placed as ``plots.parallel_axis`` places it."""
    from .plots import parallel_axis

    axis = parallel_axis(key, values)
    dimension: dict[str, Any] = {"label": axis.label, "values": axis.positions}
    if axis.ticks:
        dimension["tickvals"] = [position for position, _ in axis.ticks]
        dimension["ticktext"] = [text for _, text in axis.ticks]
    return dimension


def _curves_section(runs: list[Run]) -> str:
    import plotly.graph_objects as go

    from .plots import MAX_POINTS, step_axis

    fig = go.Figure()
    if len(runs) <= PER_RUN_LIMIT:
        for i, run in enumerate(runs):
            if not run.step_costs:
                continue
            color = _color(i)
            x, _ = step_axis(run, "epoch")
            y = run.all_step_costs().astype(np.float64)
            stride = max(1, len(y) // MAX_POINTS)
            fig.add_scatter(
                x=x[::stride],
                y=y[::stride],
                mode="lines",
                opacity=0.25,
                line={"color": color, "width": 1},
                showlegend=False,
                hoverinfo="skip",
            )
            fig.add_scatter(
                x=[e.epoch for e in run.epochs],
                y=[e.mean_step_cost for e in run.epochs],
                mode="lines+markers",
                line={"color": color, "width": 3},
                name=_label(run),
            )
        note = "each step's cost faint, each epoch's mean bold"
    else:
        for i, (arm, members) in enumerate(_arms(runs).items()):
            epochs, mean, low, high = _band(members, lambda e: e.mean_step_cost)
            _add_band(fig, epochs, mean, low, high, _color(i), f"{arm} ({len(members)} seeds)")
        note = f"{len(runs)} runs: each arm's mean over its seeds, with its min–max band"
    fig.update_layout(
        xaxis_title="epoch",
        yaxis_title="cost (cross-entropy)",
        yaxis_type="log",
        height=480,
        legend={"font": {"size": 9}},
    )
    return f"<p class='note'>{note}</p>" + _figure_html(fig, "curves")


def _accuracy_section(runs: list[Run]) -> str:
    import plotly.graph_objects as go

    fig = go.Figure()
    if len(runs) <= PER_RUN_LIMIT:
        for i, run in enumerate(runs):
            color, epochs = _color(i), [e.epoch for e in run.epochs]
            for split, dash in (("train", "dot"), ("val", "solid"), ("test", "dash")):
                values = [getattr(e, f"{split}_accuracy") for e in run.epochs]
                if any(v is not None for v in values):
                    fig.add_scatter(
                        x=epochs,
                        y=values,
                        mode="lines",
                        name=f"{_label(run)} · {split}",
                        line={"color": color, "dash": dash},
                    )
            scored = [e for e in run.epochs if e.val_accuracy is not None]
            if scored:
                best = max(scored, key=lambda e: e.val_accuracy or 0.0)
                gap = best.train_accuracy - (best.val_accuracy or 0.0)
                fig.add_scatter(
                    x=[best.epoch],
                    y=[best.val_accuracy],
                    mode="markers",
                    marker={"color": color, "size": 12, "symbol": "star"},
                    name=f"run {run.run_id}: best val epoch (gap {gap:+.3f})",
                )
    else:
        for i, (arm, members) in enumerate(_arms(runs).items()):
            epochs, mean, low, high = _band(members, lambda e: e.val_accuracy)
            _add_band(fig, epochs, mean, low, high, _color(i), f"{arm} · val")
    fig.update_layout(
        xaxis_title="epoch", yaxis_title="accuracy", height=480, legend={"font": {"size": 8}}
    )
    return (
        "<p class='note'>train dotted, validation solid, test dashed; ★ the epoch of best "
        "validation accuracy, with the generalization gap (train − validation) there</p>"
        + _figure_html(fig, "accuracy")
    )


def _hill_section(store: Store, rows: list[dict[str, Any]], data_dir: str | None) -> str:
    import plotly.graph_objects as go

    from .hill import compute_hill

    with_snapshots = [r["run_id"] for r in rows if store.snapshot_index(r["run_id"])]
    if not with_snapshots:
        return (
            "<p class='note'>no run here kept parameter snapshots: train with --snapshots K "
            "to see its path on the hill</p>"
        )
    model = {
        r["run_id"]: (r["config"]["model"], json.dumps(r["config"].get("hidden"))) for r in rows
    }
    first = model[with_snapshots[0]]
    chosen = [i for i in with_snapshots if model[i] == first][:HILL_RUN_LIMIT]
    hill = compute_hill(store, chosen, grid=HILL_GRID, subset=HILL_SUBSET, data_dir=data_dir)
    surface = np.asarray(hill.surface)
    flat = go.Figure(
        go.Contour(
            x=hill.alphas,
            y=hill.betas,
            z=np.log10(surface),
            colorscale="Viridis",
            colorbar={"title": "log10 cost"},
        )
    )
    solid = go.Figure(
        go.Surface(
            x=hill.alphas,
            y=hill.betas,
            z=surface,
            colorscale="Viridis",
            opacity=0.9,
            showscale=False,
        )
    )
    for i, path in enumerate(hill.paths):
        coords = np.asarray(path.coords)
        flat.add_scatter(
            x=coords[:, 0],
            y=coords[:, 1],
            mode="lines+markers",
            name=path.label,
            line={"color": _color(i + 1), "width": 3},
        )
        solid.add_scatter3d(
            x=coords[:, 0],
            y=coords[:, 1],
            z=path.surface_costs,
            mode="lines+markers",
            name=path.label,
            line={"color": _color(i + 1), "width": 6},
            marker={"size": 3},
        )
    for fig in (flat, solid):
        fig.update_layout(height=620, legend={"font": {"size": 9}, "orientation": "h", "y": -0.15})
    flat.update_layout(xaxis_title=hill.axis_labels[0], yaxis_title=hill.axis_labels[1])
    solid.update_layout(
        scene={
            "xaxis_title": hill.axis_labels[0][:14],
            "yaxis_title": hill.axis_labels[1][:14],
            "zaxis_title": "cost",
        }
    )
    honesty = _table(
        ["run", "snapshots", "flagged", "max off-plane", "λmax at end", "trace at end"],
        [
            [
                p.label,
                len(p.steps),
                sum(p.disagree),
                f"{100 * max(p.off_plane):.0f}%",
                None if not p.sharpness else float(p.sharpness["top_eigenvalue"]),
                None if not p.sharpness else float(p.sharpness["trace"]),
            ]
            for p in hill.paths
        ],
    )
    warnings = "".join(f"<p class='warn'>{html.escape(w)}</p>" for w in hill.warnings)
    return (
        f"<p class='note'>{hill.plane} plane, origin {html.escape(hill.origin_label)}; surface "
        f"on {hill.subset:,} training examples ({HILL_GRID}×{HILL_GRID} grid). Flagged: "
        f"snapshots whose true cost and surface value differ by more than "
        f"{100 * hill.tolerance:.0f}%.</p>"
        + honesty
        + warnings
        + _figure_html(flat, "hill-contour")
        + _figure_html(solid, "hill-3d")
    )


def _diagnostics_section(runs: list[Run], data_dir: str | None) -> str:
    from .diagnostics import diagnose_initializers

    configs: dict[tuple[Any, ...], Any] = {}
    for run in runs:
        key = (run.config.init, run.config.model, run.config.hidden, run.config.activation)
        configs.setdefault(key, run.config)
    if not configs:
        return ""
    found = diagnose_initializers(list(configs.values())[:6], steps=0, data_dir=data_dir)
    rows = [
        [
            d.init,
            layer.name,
            layer.activation_std,
            layer.saturated,
            layer.dead,
            layer.gradient_std,
            layer.identical_units,
            layer.predicted_std,
        ]
        for d in found
        for layer in d.layers
    ]
    return (
        "<p class='note'>each initializer at step 0, on a batch of training examples "
        "(costhill diagnose shows them after training steps too)</p>"
        + _table(
            [
                "init",
                "layer",
                "activation std",
                "saturated",
                "dead ReLU",
                "gradient std",
                "identical units",
                "predicted std (Glorot/He)",
            ],
            rows,
            left=2,
        )
    )


def _predictions_section(store: Store, rows: list[dict[str, Any]], data_dir: str | None) -> str:
    import plotly.graph_objects as go

    from .predictions import predict_test_set

    scored = [r for r in rows if r["status"] == "finished" and r["best_val_accuracy"] is not None]
    if not scored:
        return ""
    best = max(scored, key=lambda r: r["best_val_accuracy"])
    run = store.load(best["run_id"])
    found = predict_test_set(run, data_dir=data_dir)
    names, confusion = found.names, found.confusion()
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    heat = go.Figure(
        go.Heatmap(
            z=confusion,
            x=names,
            y=names,
            colorscale="Blues",
            text=confusion,
            texttemplate="%{text}",
        )
    )
    heat.update_layout(
        xaxis_title="predicted", yaxis_title="true", height=560, yaxis={"autorange": "reversed"}
    )
    wrong = found.wrong(24)
    accuracy = float(np.mean(found.predicted == found.labels))
    return (
        f"<p class='note'>run {run.run_id}, the best on validation; its test set "
        f"({len(found.labels):,} images): accuracy {accuracy:.4f}</p>"
        + _figure_html(heat, "confusion")
        + _table(
            ["class", "accuracy"], [[n, float(a)] for n, a in zip(names, per_class, strict=True)]
        )
        + _misclassified(found.images[wrong], found.labels[wrong], found.predicted[wrong], names)
    )


def _misclassified(
    images: np.ndarray, labels: np.ndarray, guesses: np.ndarray, names: list[str]
) -> str:
    if not len(images):
        return ""
    from .plots import plot_misclassified

    buffer = io.BytesIO()
    plot_misclassified(images, labels, guesses, names, buffer)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return (
        "<p class='note'>misclassified test images: true label, then → the prediction</p>"
        f"<img id='misclassified' alt='misclassified test images' "
        f"src='data:image/png;base64,{encoded}'>"
    )


# -- helpers -----------------------------------------------------------------------------------


def _color(i: int) -> str:
    palette = [
        "#1f77b4",
        "#ff7f0e",
        "#2ca02c",
        "#d62728",
        "#9467bd",
        "#8c564b",
        "#e377c2",
        "#7f7f7f",
        "#bcbd22",
        "#17becf",
    ]
    return palette[i % len(palette)]


def _arms(runs: list[Run]) -> dict[str, list[Run]]:
    arms: dict[str, list[Run]] = {}
    for run in runs:
        cfg = run.config
        arms.setdefault(
            f"{cfg.init} · {cfg.optimizer} lr={cfg.lr:g} · B={run.batch_size}", []
        ).append(run)
    return arms


def _band(
    runs: list[Run], value: Callable[[Any], float | None]
) -> tuple[list[int], list[float], list[float], list[float]]:
    by_epoch: dict[int, list[float]] = {}
    for run in runs:
        for e in run.epochs:
            v = value(e)
            if v is not None and np.isfinite(v):
                by_epoch.setdefault(e.epoch, []).append(float(v))
    epochs = sorted(by_epoch)
    return (
        epochs,
        [float(np.mean(by_epoch[e])) for e in epochs],
        [float(np.min(by_epoch[e])) for e in epochs],
        [float(np.max(by_epoch[e])) for e in epochs],
    )


def _add_band(fig: Any, x: list, mean: list, low: list, high: list, color: str, name: str) -> None:
    fig.add_scatter(
        x=x + x[::-1],
        y=high + low[::-1],
        fill="toself",
        fillcolor=color,
        opacity=0.2,
        line={"width": 0},
        showlegend=False,
        hoverinfo="skip",
    )
    fig.add_scatter(x=x, y=mean, mode="lines", line={"color": color, "width": 2}, name=name)
