"""The figures and diagnostics, from the committed fixture store (tests/data/runs.db) and from
the CLI, in-process."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from costhill.config import RunConfig
from costhill.results.diagnostics import diagnose_initializers
from costhill.results.plots import lr_points, parallel_lines
from costhill.results.regimes import regime_stats
from costhill.results.report import _pruned_grey
from costhill.store import Store

FIXTURE = Path(__file__).parent / "data" / "runs.db"


@pytest.fixture
def store_copy(tmp_path) -> Path:
    path = tmp_path / "runs.db"
    shutil.copy(FIXTURE, path)
    return path


def test_the_fixtures_regimes_show_what_the_article_claims(store_copy):
    with Store(store_copy, read_only=True) as store:
        stats = regime_stats(store, [1, 2, 3, 4, 5])
    by_regime = {s.batch_size: s for s in stats}
    full, stochastic = by_regime[1500], by_regime[1]
    assert full.regime == "full-batch" and stochastic.regime == "stochastic"
    assert stochastic.step_noise is not None and full.step_noise is not None
    assert stochastic.step_noise >= 10 * full.step_noise
    ratios = [by_regime[b].path_ratio or 0.0 for b in (1500, 256, 64, 16, 1)]
    assert all(r >= 1.0 for r in ratios)
    assert ratios == sorted(ratios)  # straighter the larger the batch


@pytest.mark.parametrize(
    "args",
    [
        ("1", "2"),
        ("regimes", "--sweep", "hill"),
        ("accuracy", "1", "3"),
        ("lr", "--sweep", "hill"),
        ("confusion", "3"),
        ("misclassified", "3"),
        ("parallel", "--sweep", "hill"),
        ("--sweep", "hill", "--band"),
    ],
)
def test_every_kind_of_plot_is_drawn(invoke, store_copy, tmp_path, args):
    out = tmp_path / "figure.png"
    result = invoke("plot", *args, "--out", out, "--store", store_copy)
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 5_000


@pytest.mark.parametrize(
    "args,message",
    [
        (("lr", "3"), "plot lr reads a sweep"),
        (("regimes", "1", "x"), "expected run ids after the kind"),
        (("parallel", "hill"), "hill: not a run id; a sweep is named with --sweep"),
        (("hill",), "(costhill plot costs --sweep hill)"),
        (("confusion", "1", "2"), "plot confusion draws one run"),
        ((), "name runs or --sweep NAME"),
    ],
)
def test_bad_plot_arguments_are_one_clear_line(invoke, store_copy, tmp_path, args, message):
    result = invoke("plot", *args, "--out", tmp_path / "x.png", "--store", store_copy)
    assert result.exit_code == 2 and message in result.stderr


def test_the_regimes_plot_prints_its_measurements(invoke, store_copy, tmp_path):
    result = invoke(
        "plot", "regimes", "--sweep", "hill", "--out", tmp_path / "r.png", "--store", store_copy
    )
    assert "step-to-step std" in result.stdout and "path / distance" in result.stdout
    assert (tmp_path / "r.svg").exists()


def test_zeros_make_every_hidden_unit_identical_and_a_wide_normal_blows_up():
    base = RunConfig(dataset="fashion-mnist-sample", hidden=(20, 10))
    zeros, wide, he = diagnose_initializers(
        [
            base.replace(init="zeros"),
            base.replace(init="normal:stddev=1.0"),
            base.replace(init="he_normal"),
        ]
    )
    assert [layer.identical_units for layer in zeros.layers[:-1]] == [20, 10]
    assert all(layer.dead == 1.0 for layer in zeros.layers[:-1])  # ReLU(0) = 0 everywhere
    assert all(layer.identical_units == 1 for layer in he.layers[:-1])
    assert wide.layers[-1].activation_std > 100 * he.layers[-1].activation_std
    assert wide.cost > 10 * he.cost
    for layer in he.layers:  # He's init gives the std He's argument prescribes
        assert layer.weight_std == pytest.approx(layer.predicted_std, rel=0.15)
    assert he.layers[0].log10_update_ratio is not None


def test_tanh_saturation_is_measured():
    base = RunConfig(dataset="fashion-mnist-sample", hidden=(20,), activation="tanh")
    wide, glorot = diagnose_initializers(
        [base.replace(init="normal:stddev=1.0"), base.replace(init="glorot_uniform")]
    )
    assert wide.layers[0].saturated is not None and glorot.layers[0].saturated is not None
    assert wide.layers[0].saturated > 0.5 > glorot.layers[0].saturated


def test_diagnose_from_the_cli_after_training_steps(invoke, tmp_path):
    out = tmp_path / "diagnostics.png"
    result = invoke(
        "diagnose",
        "--init",
        "zeros",
        "--init",
        "he_normal",
        "--hidden",
        "20,10",
        "--steps",
        "3",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    assert "20/20" in result.stdout  # zeros: every hidden unit of the first layer identical
    assert out.exists()
    bad = invoke("diagnose", "--init", "glorot", "--steps", "0")
    assert bad.exit_code == 2 and "--init 'glorot': unknown initializer" in bad.stderr


def test_report_from_the_cli(invoke, store_copy, tmp_path):
    out = tmp_path / "report.html"
    result = invoke("report", "--sweep", "hill", "--no-hill", "--out", out, "--store", store_copy)
    assert result.exit_code == 0, result.output
    assert "Predictions" in result.stdout and out.stat().st_size > 1_000_000
    missing = invoke("report", "7", "--out", out, "--store", store_copy)
    assert missing.exit_code == 2 and "not in" in missing.stderr


def _arm(optimizer: str, lr: float, value: float, *, pruned: bool = False) -> SimpleNamespace:
    return SimpleNamespace(params={"optimizer": optimizer, "lr": lr}, value=value, pruned=pruned)


def test_parallel_coordinates_label_every_axis_and_draw_pruned_arms_apart():
    arms = [
        _arm("adam", 1e-3, 0.80),
        _arm("sgd", 1e-2, 0.70),
        _arm("adam", 1e-4, 0.90),
        _arm("sgd", 1e-4, 0.40, pruned=True),
    ]
    lines = parallel_lines(arms, ["lr", "optimizer"])
    labels = [label for label, _ in lines.columns]
    assert labels == ["lr (log scale)", "optimizer", "mean best val acc"]
    lr_ticks, optimizer_ticks, value_ticks = (ticks for _, ticks in lines.columns)
    # Ticks in the values' own units, at heights a hand computation gives.
    assert lr_ticks == [(0.0, "0.0001"), (pytest.approx(0.5), "0.001"), (1.0, "0.01")]
    assert optimizer_ticks == [(0.0, "adam"), (1.0, "sgd")]
    assert value_ticks == [(0.0, "0.7"), (pytest.approx(0.5), "0.8"), (1.0, "0.9")]
    # An arm that ran its course reaches the value axis, scaled over those arms alone.
    assert sorted(lines.finished, key=lambda line: line[1]) == [
        ([1.0, 1.0, 0.0], 0.70),
        ([pytest.approx(0.5), 0.0, pytest.approx(0.5)], 0.80),
        ([0.0, 0.0, pytest.approx(1.0)], 0.90),
    ]
    assert lines.pruned == [[0.0, 1.0]]  # across the settings, not ranked on the value


def test_the_reports_parallel_coordinates_colour_pruned_arms_grey_below_the_scale():
    arms = [_arm("adam", 1e-3, 0.80), _arm("adam", 1e-4, 0.90), _arm("sgd", 1e-4, 0.4, pruned=True)]
    line = _pruned_grey(arms)
    assert line["cmin"] < 0.80 and line["cmax"] == pytest.approx(0.90)
    assert line["color"][:2] == [0.80, 0.90] and line["color"][2] == line["cmin"]
    grey = [place for place, colour in line["colorscale"] if colour == "#c8c8c8"]
    boundary = (0.80 - line["cmin"]) / (line["cmax"] - line["cmin"])
    assert max(grey) < boundary  # the pruned colour lies below every finished arm's


def test_the_lr_plot_keeps_per_optimizer_and_rate_the_best_arm_over_its_seeds():
    rows = [
        {"optimizer": "adam", "lr": 1e-3, "init": "he", "seed": 0, "val_accuracy": 0.80},
        {"optimizer": "adam", "lr": 1e-3, "init": "he", "seed": 1, "val_accuracy": 0.90},
        {"optimizer": "adam", "lr": 1e-3, "init": "xavier", "seed": 0, "val_accuracy": 0.84},
        {"optimizer": "adam", "lr": 1e-2, "init": "he", "seed": 0, "val_accuracy": None},
        {"optimizer": "sgd", "lr": 1e-3, "init": "he", "seed": 0, "val_accuracy": 0.5},
    ]
    points = lr_points(rows)
    assert [(p.optimizer, p.lr) for p in points] == [("adam", 1e-3), ("sgd", 1e-3)]
    adam = points[0]  # he's two seeds (mean 0.85) beat xavier's one (0.84)
    assert adam.mean == pytest.approx(0.85) and adam.std == pytest.approx(0.0707107, rel=1e-5)
