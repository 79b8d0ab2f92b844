"""The CLI, in-process: end to end on the shipped sample, help everywhere, bad input everywhere."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from costhill.cli import cli

SAMPLE = ("--dataset", "fashion-mnist-sample", "--validation", "300")


def _count_runs(path) -> int:
    if not path.exists():
        return 0
    return sqlite3.connect(path).execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def test_end_to_end_on_the_sample(invoke, store_path, tmp_path):
    result = invoke(
        "train",
        *SAMPLE,
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--store",
        store_path,
        "--target-accuracy",
        "0.5",
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    for key in (
        "run_id",
        "status",
        "regime",
        "epochs",
        "steps",
        "seconds",
        "train_accuracy",
        "val_accuracy",
        "test_accuracy",
        "train_cost",
        "test_cost",
        "target_reached",
    ):
        assert key in summary
    assert summary["status"] == "finished" and summary["regime"] == "mini-batch"
    assert summary["steps"] == 3 * 54 and summary["test_accuracy"] > 0.6
    assert summary["target_reached"]["epoch"] >= 1
    run_id = str(summary["run_id"])

    listed = json.loads(invoke("runs", "--store", store_path, "--json").stdout)
    assert [r["run_id"] for r in listed] == [summary["run_id"]]

    shown = invoke("show", run_id, "--store", store_path, "--json")
    detail = json.loads(shown.stdout)
    assert detail["config"]["batch_size"] == 32 and len(detail["epochs_detail"]) == 3
    assert "jax" in detail["versions"]
    assert "val acc" in invoke("show", run_id, "--store", store_path).stdout
    assert "mini-batch" in invoke("runs", "--store", store_path).stdout

    png = tmp_path / "costs.png"
    for axis in ("step", "epoch", "seconds"):
        assert (
            invoke("plot", run_id, "--out", png, "--x", axis, "--store", store_path).exit_code == 0
        )
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    npz = tmp_path / "params.npz"
    assert invoke("export-params", run_id, "--out", npz, "--store", store_path).exit_code == 0
    arrays = np.load(npz)
    assert arrays["dense_0/kernel"].shape == (784, 200)
    assert sorted(arrays) == sorted(
        f"dense_{i}/{kind}" for i in range(4) for kind in ("bias", "kernel")
    )

    # Every --out makes its folder; one under a file cannot be made: one line naming it.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for folder in (tmp_path / "new", blocker):
        for args in (
            ("export-params", run_id, "--out", folder / "p.npz"),
            ("export", "--format", "csv", f"--out={folder / 'runs.csv'}"),
            ("report", "--out", folder / "report.html"),
            ("plot", run_id, "--out", folder / "costs.png"),
        ):
            result = invoke(*args, "--store", store_path)
            if folder == blocker:
                lines = result.stderr.strip().splitlines()
                assert result.exit_code == 2 and len(lines) == 1, result.output
                assert lines[0].startswith(f"Error: --out {blocker}/"), lines[0]
                assert lines[0].endswith(f": {blocker} is a file, not a folder"), lines[0]
            else:
                assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "new").iterdir())) == 4 and blocker.read_text() == "not a folder"

    predicted = invoke("predict", run_id, "--index", "0", "--index", "7", "--store", store_path)
    assert predicted.exit_code == 0
    assert "Ankle boot" in predicted.stdout or "probability" in predicted.stdout


def test_predict_an_image_file(invoke, store_path, tmp_path, sample):
    from PIL import Image

    assert (
        invoke("train", *SAMPLE, "--epochs", "2", "--store", store_path, "--quiet").exit_code == 0
    )
    picture = tmp_path / "item.png"
    Image.fromarray((sample.test.images[0] * 255).astype(np.uint8)).resize((56, 56)).save(picture)
    result = invoke("predict", "1", "--image", picture, "--store", store_path)
    assert result.exit_code == 0 and "--image" in result.stdout
    text = tmp_path / "not-an-image.png"
    text.write_text("hello")
    bad = invoke("predict", "1", "--image", text, "--store", store_path)
    assert bad.exit_code == 2 and "cannot be read as an image" in bad.stderr


def test_presets_are_layered_under_flags(invoke, store_path):
    result = invoke(
        "train",
        "--preset",
        "seed",
        *SAMPLE,
        "--epochs",
        "1",
        "--store",
        store_path,
        "--json",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    row = json.loads(invoke("runs", "--store", store_path, "--json").stdout)[0]
    assert row["config"]["lr"] == 1e-4 and row["config"]["epochs"] == 1
    assert row["config"]["validation"] == 300 and row["optimizer"] == "adam"


@pytest.mark.parametrize(
    "args,message",
    [
        (("--optimizer", "adamm"), "unknown optimizer; known: "),
        (("--opt", "beta1=0.9"), "adam has no hyperparameter 'beta1'"),
        (("--opt", "b1"), "expected KEY=VALUE"),
        (("--init", "glorot"), "unknown initializer 'glorot'"),
        (("--bias-init", "he_normal"), "cannot initialize a bias"),
        (("--batch-size", "0"), "--batch-size 0: must be at least 1"),
        (("--batch-size", "big"), "expected a positive integer or 'full'"),
        (("--batch-size", "1701"), "--batch-size 1701: larger than the 1,700 training examples"),
        (("--lr", "-1"), "lr = -1.0: expected a positive number"),
        (("--validation", "5000"), "--validation 5000: must be between 0 and 1999"),
        (("--schedule", "cosine:beta=1"), "cosine has no option 'beta'"),
        (("--preset", "nope"), "unknown preset; known: "),
        (("--hidden", "200,x"), "expected widths like 200,100,30"),
    ],
)
def test_bad_input_is_one_clear_line_and_nothing_is_stored(invoke, store_path, args, message):
    base = list(SAMPLE)
    if "--validation" in args:
        base = ["--dataset", "fashion-mnist-sample"]
    result = invoke("train", *base, *args, "--epochs", "1", "--store", store_path)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert _count_runs(store_path) == 0


@pytest.mark.parametrize(
    "command",
    [
        ("plot", "1", "--store"),
        ("plot", "parallel", "--sweep", "any", "--store"),
        ("hill", "1", "2", "--store"),  # refused before a surface is computed
        ("diagnose", "--data"),  # before the data is read
    ],
)
@pytest.mark.parametrize(
    "out, wrong",
    [
        ("costs.txt", "'.txt' is not an image format matplotlib writes"),
        ("costs", "no suffix to name its image format by"),
    ],
)
def test_an_image_out_that_matplotlib_cannot_write_is_one_line(
    invoke, store_path, tmp_path, command, out, wrong
):
    name, *rest = command  # --out first: it is checked before any option after it
    result = invoke(name, "--out", tmp_path / out, *rest, store_path)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1
    assert lines[0].startswith(f"Error: --out {tmp_path / out}: {wrong}; formats: ")
    assert "png" in lines[0] and not (tmp_path / out).exists() and not store_path.exists()


def test_broken_data_stops_before_anything_is_stored(invoke, store_path, sample_copy):
    assert (
        invoke("train", *SAMPLE, "--epochs", "1", "--store", store_path, "--quiet").exit_code == 0
    )
    before = store_path.read_bytes()
    target = sample_copy / "train-images-idx3-ubyte.gz"
    target.write_bytes(target.read_bytes()[:5000])
    result = invoke("train", "--data", sample_copy, "--epochs", "1", "--store", store_path)
    assert result.exit_code == 2
    assert "train-images-idx3-ubyte.gz" in result.stderr and "Traceback" not in result.output
    assert _count_runs(store_path) == 1
    assert invoke("runs", "--store", store_path, "--json").exit_code == 0
    del before


def test_missing_run_and_store_are_clear(invoke, store_path):
    result = invoke("show", "3", "--store", store_path)
    assert result.exit_code == 2 and "no such store" in result.stderr
    assert not store_path.exists()


def test_data_command_reports_source_and_verification(invoke):
    result = invoke("data", "--dataset", "fashion-mnist-sample")
    assert result.exit_code == 0
    assert "SHA-256 of all 4 files matches" in result.stdout
    assert "train 1,500" in result.stdout and "test 500" in result.stdout
    assert "MIT License" in result.stdout


def test_data_without_any_source_says_how_to_get_it(invoke, tmp_path):
    result = invoke("data", "--data", tmp_path)
    assert result.exit_code == 2
    assert "missing file(s)" in result.stderr


def test_catalog_commands_list_every_name(invoke):
    from costhill.initializers import INITIALIZERS
    from costhill.optimizers import OPTIMIZERS

    optimizers = invoke("optimizers").stdout
    assert all(name in optimizers for name in OPTIMIZERS)
    assert "b1=0.9" in optimizers and "warmup_cosine" in optimizers
    initializers = invoke("initializers").stdout
    assert all(name in initializers for name in INITIALIZERS)
    assert "stddev=0.01" in initializers and "xavier_uniform" in initializers
    assert "seed:" in invoke("presets").stdout


def _all_commands(group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name)
        if hasattr(command, "commands"):
            yield from _all_commands(command, (*prefix, name))


@pytest.mark.parametrize("path", list(_all_commands(cli)))
def test_every_command_has_help_with_an_example(invoke, path):
    result = invoke(*path, "--help")
    assert result.exit_code == 0
    assert "Example:" in result.stdout


def test_help_does_not_import_jax():
    code = (
        "import sys; from click.testing import CliRunner; from costhill.cli import cli; "
        "CliRunner().invoke(cli, ['--help']); print('jax' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_demo_runs_and_shows_predictions(invoke, store_path, tmp_path, monkeypatch):
    from costhill import data

    monkeypatch.setattr(data, "full_data_available", lambda data_dir=None: False)
    out = tmp_path / "demo.png"
    result = invoke("demo", "--epochs", "2", "--store", store_path, "--out", out)
    assert result.exit_code == 0, result.output
    assert "shipped with costhill" in result.stdout
    assert "predictions of run 1" in result.stdout
    assert out.exists()


def _scalar_tags(directory) -> dict[str, int]:
    """Count scalar events per tag in TensorBoard event files (TFRecord framing, read by hand)."""
    import struct

    from tensorboardX.proto import event_pb2

    counts: dict[str, int] = {}
    for path in directory.rglob("events.out.tfevents.*"):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            event = event_pb2.Event.FromString(data[offset + 12 : offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                counts[value.tag] = counts.get(value.tag, 0) + 1
    return counts


def test_tensorboard_events_from_train_sweep_and_export(invoke, store_path, tmp_path):
    tb = tmp_path / "tb"
    result = invoke(
        "train",
        *SAMPLE,
        "--epochs",
        "2",
        "--batch-size",
        "1",
        "--store",
        store_path,
        "--tensorboard",
        tb,
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    tags = _scalar_tags(tb)
    assert tags["accuracy/val"] == 2 and tags["cost/test"] == 2
    # 1,700 steps an epoch, drawn as at most 1,000 block means each.
    assert 1700 // 2 <= tags["cost/step"] // 2 <= 1000
    exported = tmp_path / "exported"
    assert (
        invoke(
            "export", "--format", "tensorboard", "--out", exported, "--store", store_path
        ).exit_code
        == 0
    )
    assert _scalar_tags(exported)["accuracy/train"] == 2


def test_a_sweeps_progress_names_the_best_arm_by_its_seeds_mean():
    """One lucky seed does not lead: arm A's 0.80 and 0.90 (mean 0.85) fall behind B's 0.88,
    until B's second seed diverges (it counts 0); a pruned run never leads, however high it
    got. Each arm is named by the plan's axes too (here its hidden widths)."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from costhill.cli.sweep import _SweepProgress
    from costhill.config import from_dict

    widths = {0.1: [10], 0.3: [20], 0.9: [30]}

    def run(lr: float, seed: int, accuracy: float | None, status: str = "finished") -> object:
        values = {"model": "mlp", "optimizer": "sgd", "lr": lr, "seed": seed, "hidden": widths[lr]}
        config = from_dict(values, source="test")
        return SimpleNamespace(
            config=config, status=status, run_id=None, best_validation=lambda: (accuracy, None)
        )

    class Plan(list):
        name = "p"
        axes = ("lr", "hidden")

    shown = _SweepProgress(Console(file=io.StringIO()), Plan(range(6)), None, returned_whole=False)
    said = []
    for ended in (
        run(0.1, 0, 0.80),
        run(0.3, 0, 0.88),
        run(0.1, 1, 0.90),
        run(0.9, 0, 0.99, status="pruned"),
        run(0.3, 1, None, status="diverged"),
        None,  # a run skipped (already in the store)
    ):
        shown.on_run_end(0, ended)
        said.append(shown.progress.tasks[shown.overall].fields["info"])
    a = "sgd lr=0.1 glorot_uniform B=64 hidden=[10]"
    b = "sgd lr=0.3 glorot_uniform B=64 hidden=[20]"
    assert said == [
        f"best arm so far: val acc 0.8000 over 1 seed · {a}",
        f"best arm so far: val acc 0.8800 over 1 seed · {b}",
        f"best arm so far: val acc 0.8800 over 1 seed · {b}",
        f"best arm so far: val acc 0.8800 over 1 seed · {b}",
        f"best arm so far: val acc 0.8500 over 2 seeds · {a}",
        f"best arm so far: val acc 0.8500 over 2 seeds · {a}",
    ]


def test_a_sweeps_progress_names_an_arm_only_by_the_axes_it_has():
    """In a plan where only SGD searches ``opt.momentum``, an Adam arm is named without it (not
    as ``opt.momentum=null``), and an SGD arm with it, as compare names them."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from costhill.cli.sweep import _SweepProgress
    from costhill.config import from_dict

    def run(optimizer: str, accuracy: float, opt: dict[str, float]) -> object:
        values = {"model": "logreg", "optimizer": optimizer, "lr": 0.01, "opt": opt}
        return SimpleNamespace(
            config=from_dict(values, source="test"),
            status="finished",
            run_id=None,
            best_validation=lambda: (accuracy, None),
        )

    class Plan(list):
        name = "p"
        axes = ("optimizer", "lr", "opt.momentum")

    shown = _SweepProgress(Console(file=io.StringIO()), Plan(range(2)), None, returned_whole=False)
    said = []
    for ended in (run("sgd", 0.7, {"momentum": 0.9}), run("adam", 0.8, {})):
        shown.on_run_end(0, ended)
        said.append(shown.progress.tasks[shown.overall].fields["info"])
    assert said == [
        "best arm so far: val acc 0.7000 over 1 seed · sgd lr=0.01 glorot_uniform B=64 "
        "opt.momentum=0.9",
        "best arm so far: val acc 0.8000 over 1 seed · adam lr=0.01 glorot_uniform B=64",
    ]
