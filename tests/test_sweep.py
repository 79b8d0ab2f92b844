"""Sweeps: resume, kill -9, concurrent writers, divergence, budgets; compare; export; the CLI."""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from costhill import RunConfig
from costhill.records import EpochRecord, Run, TargetReached
from costhill.results.compare import compare, sign_flip_p_value
from costhill.store import SearchedRange, Store
from costhill.sweeps import parse_plan, run_plan

SMALL = """\
name = "{name}"
dataset = "fashion-mnist-sample"
validation = 300
batch_size = 100
{budget}
target = 0.5
seeds = {seeds}

[axes]
init = ["glorot_uniform", "he_normal"]

[[axes.optimizer]]
name = "adam"
lr = [1e-3, 3e-3]
"""


def _plan(name="small", budget="epochs = 1", seeds="[0, 1]", source="small.toml"):
    return parse_plan(SMALL.format(name=name, budget=budget, seeds=seeds), source=source)


def _finished_per_hash(path: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        rows = db.execute(
            "SELECT config_hash, COUNT(*) FROM runs WHERE status IN ('finished', 'diverged') "
            "GROUP BY config_hash"
        ).fetchall()
    return dict(rows)


def _finished_so_far(path: Path) -> int:
    """Runs a sweep in another process has finished; 0 until it has created its store's tables
    (the file exists a moment before they do)."""
    if not path.exists():
        return 0
    try:
        return sum(_finished_per_hash(path).values())
    except sqlite3.OperationalError as error:
        if "no such table" in str(error):
            return 0
        raise


def test_a_sweep_resumes_where_it_stopped(store_path):
    plan = _plan()
    with Store(store_path) as store:
        first = run_plan(plan, store)
        second = run_plan(plan, store)
    assert (first.planned, first.trained, first.skipped) == (8, 8, 0)
    assert (second.trained, second.skipped) == (0, 8)
    counts = _finished_per_hash(store_path)
    assert len(counts) == 8 and set(counts.values()) == {1}


@contextlib.contextmanager
def _sweep_processes(plan_files: list[Path], store: Path) -> Iterator[list[subprocess.Popen]]:
    """Sweeps in their own processes, each one's stderr (the progress bar, or the error) in a
    file that a failing assertion shows (a pipe nobody reads could fill and stop the sweep).
    Any still running on the way out are killed by pid, so a failing test leaves nothing behind
    to fail the next one."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    processes = []
    try:
        for plan_file in plan_files:
            log = tempfile.TemporaryFile(mode="w+")
            process = subprocess.Popen(
                [sys.executable, "-m", "costhill", "sweep", str(plan_file), "--store", str(store)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                text=True,
                env=env,
            )
            process.log = log  # type: ignore[attr-defined]
            processes.append(process)
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
            process.log.close()  # type: ignore[attr-defined]


def _finishes(process: subprocess.Popen) -> bool:
    process.wait(timeout=300)
    log = process.log  # type: ignore[attr-defined]
    log.seek(0)
    assert process.returncode == 0, f"the sweep exited {process.returncode}:\n{log.read()[-3000:]}"
    return True


def test_kill_9_mid_sweep_loses_nothing_finished(tmp_path, store_path):
    plan_file = tmp_path / "long.toml"
    plan_file.write_text(SMALL.format(name="long", budget="epochs = 4", seeds="[0, 1, 2, 3]"))
    with _sweep_processes([plan_file], store_path):  # killed by pid on the way out
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if _finished_so_far(store_path) >= 2:
                break
            time.sleep(0.2)
    finished_before = sum(_finished_per_hash(store_path).values())
    assert finished_before >= 2
    db = sqlite3.connect(store_path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    plan = parse_plan(plan_file.read_text(), source=str(plan_file))
    with Store(store_path) as store:
        report = run_plan(plan, store)
    assert report.skipped == finished_before
    assert report.trained == len(plan) - finished_before
    counts = _finished_per_hash(store_path)
    assert len(counts) == len(plan) and set(counts.values()) == {1}


def _read_while_they_write(store_path: Path, processes: list, invoke) -> int:
    """Read the store as a user would, over and over, until the sweeps end: every command
    answers (no "database is locked"), and every run is seen whole or not at all."""
    reads = 0
    while any(process.poll() is None for process in processes):
        if not _finished_so_far(store_path):
            time.sleep(0.05)
            continue
        for args in (("runs", "--json"), ("compare", "--sweep", "left")):
            result = invoke(*args, "--store", store_path)
            said = result.output + result.stderr
            assert "locked" not in said and result.exit_code in (0, 2), said
            assert result.exit_code == 0 or args[0] == "compare"  # no finished run yet
        with Store(store_path, read_only=True) as store:
            for row in store.list_runs():
                run = store.load(row["run_id"], with_params=row["status"] == "finished")
                assert len(run.step_costs) == len(run.epochs)
                if row["status"] == "finished":
                    assert len(run.epochs) == 2 and run.params
        reads += 1
    return reads


@pytest.mark.slow
def test_two_sweeps_and_a_reader_share_one_store(tmp_path, store_path, invoke):
    files = []
    for name, seeds in (("left", "[0, 1]"), ("right", "[2, 3]")):
        path = tmp_path / f"{name}.toml"
        path.write_text(SMALL.format(name=name, budget="epochs = 2", seeds=seeds))
        files.append(path)
    with _sweep_processes(files, store_path) as processes:
        assert _read_while_they_write(store_path, processes, invoke) >= 3
        for process in processes:
            assert _finishes(process)
    counts = _finished_per_hash(store_path)
    assert len(counts) == 16 and set(counts.values()) == {1}
    db = sqlite3.connect(store_path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT COUNT(DISTINCT sweep) FROM sweep_members").fetchone()[0] == 2


@pytest.mark.slow
def test_two_sweeps_of_one_plan_train_each_config_once(tmp_path, store_path):
    plan_file = tmp_path / "same.toml"
    plan_file.write_text(SMALL.format(name="same", budget="epochs = 2", seeds="[0, 1]"))
    with _sweep_processes([plan_file, plan_file], store_path) as processes:
        for process in processes:
            assert _finishes(process)
    counts = _finished_per_hash(store_path)
    assert len(counts) == 8 and set(counts.values()) == {1}
    db = sqlite3.connect(store_path)
    assert db.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0


def test_two_tuning_sweeps_of_one_plan_drive_its_one_study(tmp_path, store_path):
    """Both ask, train and tell trials of the one study in the journal beside the store: each
    config is trained once, and a trial one left to the other is told by the next run, which
    trains nothing."""
    import optuna

    from costhill.sweeps.tuning import journal_path

    text = SMALL.format(name="tuned-twice", budget="epochs = 2", seeds="[0, 1]")
    text = text.replace("lr = [1e-3, 3e-3]", "lr = {log = [1e-4, 1e-1]}")
    text = text.replace("[axes]", 'search = "tpe"\ntrials = 6\nprune = "asha"\n\n[axes]')
    plan_file = tmp_path / "tuned.toml"
    plan_file.write_text(text)
    with _sweep_processes([plan_file, plan_file], store_path) as processes:
        for process in processes:
            assert _finishes(process)
    with contextlib.closing(sqlite3.connect(store_path)) as db:
        runs = db.execute("SELECT config_hash, status FROM runs").fetchall()
        assert db.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
    assert len(runs) == len({h for h, _ in runs}) and {s for _, s in runs} <= {"finished", "pruned"}
    with Store(store_path) as store:
        again = run_plan(parse_plan(text, source="tuned.toml"), store)
        journal = optuna.storages.journal.JournalFileBackend(str(journal_path(store)))
    assert again.trained == 0
    trials = optuna.load_study(
        study_name="tuned-twice.adam", storage=optuna.storages.JournalStorage(journal)
    ).trials
    told = [t for t in trials if t.state.is_finished()]
    assert len(told) >= 6 and not [t for t in trials if t.state.name == "RUNNING"]


def test_a_stale_claim_does_not_block(store_path):
    with Store(store_path) as store:
        store.db.execute(
            "INSERT INTO claims VALUES ('abc', ?, 999999999, 0)",
            (__import__("socket").gethostname(),),
        )
        assert store.claim("abc")  # that pid is not alive on this host
        store.db.execute("INSERT INTO claims VALUES ('def', 'another-host', 1, ?)", (time.time(),))
        assert not store.claim("def")  # fresh heartbeat elsewhere: still live
        store.db.execute("UPDATE claims SET heartbeat = 0 WHERE config_hash = 'def'")
        assert store.claim("def")  # stale heartbeat


def test_a_diverging_run_is_recorded_and_the_sweep_goes_on(store_path):
    text = """\
dataset = "fashion-mnist-sample"
validation = 300
batch_size = 100
epochs = 2
[[axes.optimizer]]
name = "sgd"
lr = [1e4, 1e-2]
"""
    with Store(store_path) as store:
        report = run_plan(parse_plan(text, source="wild.toml"), store)
        statuses = sorted(r["status"] for r in store.list_runs())
    assert report.trained == 2 and report.diverged == 1
    assert statuses == ["diverged", "finished"]


def test_examples_and_seconds_budgets(store_path):
    examples = _plan(name="ex", budget="examples = 3000", seeds="[0]")
    seconds = _plan(name="sec", budget="seconds = 0.3", seeds="[0]")
    with Store(store_path) as store:
        run_plan(examples, store)
        run_plan(seconds, store)
        by_sweep = {name: store.sweep_runs(name) for name in ("ex", "sec")}
        timed = [store.load(r["run_id"], with_params=False) for r in by_sweep["sec"]]
    # 3,000 examples over a 1,700-image training split is 2 epochs (whole epochs, rounded up).
    assert {r["epochs"] for r in by_sweep["ex"]} == {2}
    for run in timed:  # stops at the first epoch whose cumulative training time reaches 0.3 s
        epoch_seconds = [e.seconds for e in run.epochs]
        assert sum(epoch_seconds) >= 0.3 and sum(epoch_seconds[:-1]) < 0.3


def _synthetic_run(
    optimizer: str, lr: float, seed: int, val: float, test: float, seconds: float
) -> Run:
    config = RunConfig(
        dataset="fashion-mnist-sample",
        optimizer=optimizer,
        lr=lr,
        seed=seed,
        epochs=2,
        target_accuracy=0.5,
    )
    run = Run(
        config=config,
        status="finished",
        regime="mini-batch",
        batch_size=64,
        num_train=1500,
        steps_per_epoch=24,
        versions={"costhill": "test"},
    )
    for epoch, (v, t) in enumerate(((val - 0.1, test - 0.1), (val, test)), start=1):
        run.epochs.append(
            EpochRecord(epoch, 24 * epoch, 1.0, 1.0, 0.9, 1.0, v, 1.0, t, seconds, 0.0)
        )
        run.step_costs.append(np.ones(24, np.float32))
        if run.target is None and v >= 0.5:
            run.target = TargetReached(0.5, "validation", epoch, 24 * epoch, seconds * epoch)
    return run


@pytest.fixture
def compared_store(store_path):
    """Arms whose validation and test rankings disagree: the protocol must follow validation."""
    arms = {
        ("adam", 1e-3): (0.80, 0.90, 1.0),  # best on test, worse on validation
        ("adam", 3e-3): (0.85, 0.80, 2.0),  # best on validation
        ("sgd", 0.1): (0.70, 0.70, 4.0),
    }
    runs = [
        _synthetic_run(optimizer, lr, seed, val + 0.001 * seed, test, seconds)
        for (optimizer, lr), (val, test, seconds) in arms.items()
        for seed in range(4)
    ]
    return _saved_as_sweep(store_path, "synthetic", runs)


def _saved_as_sweep(store_path: Path, sweep: str, runs: list[Run]) -> Path:
    with Store(store_path) as store:
        for run in runs:
            store.save(run)
        store.add_to_sweep(sweep, [run.config.config_hash() for run in runs])
    return store_path


def test_compare_tunes_on_validation_and_never_on_test(compared_store):
    with Store(compared_store) as store:
        result = compare(store, "synthetic")
    chosen = {c.group: c.chosen for c in result.choices}
    assert "lr=0.003" in chosen["adam"] and "lr=0.1" in chosen["sgd"]
    adam = next(c for c in result.choices if c.group == "adam")
    assert adam.test_at_best_val.mean == pytest.approx(0.80)
    assert len(result.rows) == 3 and all(len(r.seeds) == 4 for r in result.rows)
    pair = result.paired[0]
    assert pair.seeds == 4 and pair.mean_difference == pytest.approx(0.10)
    assert pair.p_value == pytest.approx(2 / 16)
    # Target 0.5 is reached at epoch 1 by every arm; the fastest takes 1.0 s.
    assert result.profile["fraction"][0] == pytest.approx(1 / 3)
    assert result.profile["fraction"][-1] == 1.0


def _curve_run(
    optimizer: str,
    lr: float,
    seed: int,
    curve: list[float],
    status: str,
    costs: list[float] | None = None,
    opt: tuple[tuple[str, float], ...] = (),
) -> Run:
    """A run whose validation accuracy after each epoch is ``curve`` (and validation cost
    ``costs``, or 1), stopped as ``status``; ``opt`` its optimizer's own hyperparameters."""
    run = Run(
        config=RunConfig(
            dataset="fashion-mnist-sample", optimizer=optimizer, lr=lr, seed=seed, opt=opt
        ),
        status=status,
        regime="mini-batch",
        batch_size=64,
        num_train=640,
        steps_per_epoch=10,
        versions={"costhill": "test"},
    )
    costs = costs or [1.0] * len(curve)
    for epoch, (val, cost) in enumerate(zip(curve, costs, strict=True), start=1):
        run.epochs.append(EpochRecord(epoch, 10 * epoch, 1.0, 1.0, 0.9, cost, val, 1.0, val, 1, 0))
        run.step_costs.append(np.ones(10, np.float32))
    return run


@pytest.fixture
def pruned_store(store_path):
    """A tuning sweep's arms, some pruned: by a margin the seeds agree on, or within their noise."""
    adam = [[0.80, 0.85, 0.90], [0.70, 0.75, 0.80], [0.75, 0.80, 0.85]]  # the chosen arm's
    arms = {
        ("adam", 1e-3, "finished"): adam,
        ("adam", 1e-2, "pruned"): [[0.78], [0.72], [0.74]],  # behind, ahead, behind: noise
        ("adam", 3e-3, "pruned"): [[0.6, 0.84], [0.6, 0.74], [0.6, 0.79]],  # 0.01 at every seed
        ("sgd", 0.1, "finished"): [[0.80, 0.9], [0.81, 0.9], [0.79, 0.9]],
        ("sgd", 1.0, "pruned"): [[0.50], [0.52], [0.49]],  # 0.30, 0.29, 0.30 behind: clear
        ("lion", 1e-4, "finished"): [[0.8, 0.9], [0.8, 0.9]],
        ("lion", 1e-3, "pruned"): [[0.7]],  # one seed: no spread to judge by
    }
    runs = [
        _curve_run(optimizer, lr, seed, curve, status)
        for (optimizer, lr, status), curves in arms.items()
        for seed, curve in enumerate(curves)
    ]
    return _saved_as_sweep(store_path, "tuned", runs)


def test_compare_sets_each_pruned_arm_against_the_chosen_one_where_it_stopped(pruned_store):
    with Store(pruned_store) as store:
        result = compare(store, "tuned")
    found = {(d.group, d.pruned): d for d in result.decisions}
    assert set(found) == {
        ("adam", "lr=0.01 · optimizer=adam"),
        ("adam", "lr=0.003 · optimizer=adam"),
        ("sgd", "lr=1.0 · optimizer=sgd"),
        ("lion", "lr=0.001 · optimizer=lion"),
    }
    noisy = found["adam", "lr=0.01 · optimizer=adam"]
    # Seeds 0, 1, 2 lead by 0.02, -0.02, 0.01: mean 0.00333, standard error 0.0208 / sqrt(3).
    assert (noisy.epoch, noisy.seeds, noisy.kept) == (1, 3, "lr=0.001 · optimizer=adam")
    assert noisy.lead == pytest.approx(0.01 / 3)
    assert noisy.standard_error == pytest.approx(0.012019, abs=1e-6)
    assert noisy.within_noise is True
    later = found["adam", "lr=0.003 · optimizer=adam"]  # judged at epoch 2, where it stopped
    assert later.epoch == 2 and later.lead == pytest.approx(0.01)
    assert later.standard_error == pytest.approx(0.0, abs=1e-12) and later.within_noise is False
    clear = found["sgd", "lr=1.0 · optimizer=sgd"]
    assert clear.lead == pytest.approx(0.89 / 3) and clear.within_noise is False
    alone = found["lion", "lr=0.001 · optimizer=lion"]
    assert alone.seeds == 1 and alone.standard_error is None and alone.within_noise is None
    # adam tried three rates (pruned ones count) and chose the smallest; sgd and lion tried two.
    assert [(e.group, e.setting, e.value, e.side, e.tried) for e in result.edges] == [
        ("adam", "lr", 1e-3, "smallest", 3)
    ]


def test_compare_weighs_a_pruners_decisions_on_the_metric_it_judged(invoke, store_path):
    """The pruned arm is 0.1 behind in validation accuracy at every seed, but in validation
    cost, which its pruner judged, the seeds cannot tell the two apart."""
    arms = {  # (validation accuracy, validation cost) after epoch 1, seeds 0, 1, 2
        ("adam", 1e-3, "finished"): [(0.80, 0.50), (0.81, 0.60), (0.79, 0.55)],
        ("adam", 1e-2, "pruned"): [(0.70, 0.52), (0.71, 0.58), (0.69, 0.56)],
    }
    runs = [
        _curve_run(optimizer, lr, seed, [val], status, [cost])
        for (optimizer, lr, status), epochs in arms.items()
        for seed, (val, cost) in enumerate(epochs)
    ]
    path = _saved_as_sweep(store_path, "tuned", runs)
    with Store(path) as store:
        (unrecorded,) = compare(store, "tuned").decisions  # a store from before version 4
        store.set_sweep_pruning("tuned", "asha", "val_cost")
        (decision,) = compare(store, "tuned").decisions
    assert unrecorded.metric == "val_accuracy" and unrecorded.lead == pytest.approx(0.1)
    assert unrecorded.within_noise is False
    # The chosen arm's cost is 0.02 lower, 0.02 higher, 0.01 lower: a lead of 0.01 / 3.
    assert decision.metric == "val_cost" and decision.lead == pytest.approx(0.01 / 3)
    assert decision.standard_error == pytest.approx(0.012019, abs=1e-6)
    assert decision.within_noise is True
    text = _compared_tuned(invoke, path)
    assert "1 of 1 pruned arms were stopped within the seeds' noise" in text
    assert "over matched seeds, in validation cost" in text
    assert "pruned (stopped early by asha on validation cost; never compared or chosen)" in text


@pytest.mark.parametrize(
    "chosen, tried, expected",
    [
        ({"lr": 0.1}, [0.1, 0.2, 0.3], [("lr", "smallest")]),
        ({"lr": 0.3}, [0.1, 0.2, 0.3], [("lr", "largest")]),
        ({"lr": 0.2}, [0.1, 0.2, 0.3], []),
        ({"lr": 0.3}, [0.1, 0.3], []),  # two values: every one is at an end
        ({"lr": 0.3, "batch_size": 64}, [0.1, 0.2, 0.3], [("lr", "largest")]),  # one value
        ({"lr": 0.3, "init": "he"}, [0.1, 0.2, 0.3], [("lr", "largest")]),  # not a number
    ],
)
def test_a_chosen_arm_is_at_the_edge_of_what_its_group_tried(chosen, tried, expected):
    from costhill.results.compare import at_the_edge

    arms = [{**chosen, "optimizer": "adam", "lr": lr} for lr in tried]
    arms += [{**chosen, "optimizer": "sgd", "lr": 10 * lr} for lr in (1, 2, 3, 4)]  # elsewhere
    edges = at_the_edge("optimizer", [("chosen", {**chosen, "optimizer": "adam"})], arms)
    assert [(e.setting, e.side) for e in edges] == expected


@pytest.mark.parametrize(
    "chosen, ranges, expected",
    [
        (0.3, [SearchedRange("adam", "lr", False, 0.0, 1.0)], 1.0),  # 0.7 on to the end, 0.1 in
        (0.3, [SearchedRange("adam", "lr", False, 0.0, 0.35)], None),  # 0.05 on: at the end
        (0.1, [SearchedRange("adam", "lr", False, 0.05, 1.0)], None),
        (0.1, [SearchedRange("adam", "lr", False, -1.0, 1.0)], -1.0),
        (0.3, [SearchedRange("adam", "lr", False, 0.0, 0.25)], None),  # narrowed since
        (0.3, [SearchedRange("", "lr", False, 0.0, 1.0)], 1.0),  # the plan's shared axis
        (0.3, [SearchedRange("sgd", "lr", False, 0.0, 1.0)], None),  # another optimizer's
        (0.3, [SearchedRange("adam", "lr", True, 0.01, 0.4)], None),  # log: ln 4/3 < ln 3/2
        (0.3, [SearchedRange("adam", "lr", True, 0.01, 1.0)], 1.0),  # ln 10/3 > ln 3/2
        (0.3, [], None),  # a grid, or a store from before version 5
    ],
)
def test_a_chosen_value_short_of_its_searched_range_calls_for_more_trials(chosen, ranges, expected):
    from costhill.results.compare import at_the_edge

    arms = [{"optimizer": "adam", "lr": lr} for lr in (0.1, 0.2, 0.3)]
    arms += [{"optimizer": "sgd", "lr": lr} for lr in (1.0, 2.0, 3.0)]
    (edge,) = at_the_edge(
        "optimizer", [("chosen", {"optimizer": "adam", "lr": chosen})], arms, ranges
    )
    assert edge.range_end == expected


def test_compare_cli_and_report_say_when_a_value_is_short_of_its_range(
    invoke, pruned_store, tmp_path
):
    from costhill.results.report import write_report

    with Store(pruned_store) as store:
        # adam chose its smallest of 3e-3, 1e-2 and 1e-3, four decades above its range's low end.
        store.set_sweep_ranges("tuned", [SearchedRange("adam", "lr", True, 1e-7, 1e-1)])
        page = tmp_path / "report.html"
        write_report(store, page, sweep="tuned", with_hill=False, with_predictions=False)
    text = _compared_tuned(invoke, pruned_store)
    said = (
        "at the edge of what was drawn, short of its range's end (the best may lie between: more "
        "trials would look there): adam: lr=0.001 is the smallest of the 3 lr values tried, its "
        "range goes on to 1e-07"
    )
    assert said in text and "widen the range" not in text
    assert html.escape(said) in " ".join(page.read_text().split())


def _compared(invoke, store: Path, sweep: str, *flags: str) -> str:
    """What ``costhill compare`` prints of ``sweep``, on one line."""
    result = invoke("compare", "--sweep", sweep, "--store", store, *flags)
    assert result.exit_code == 0, result.output
    return " ".join(result.stdout.split())


def _compared_tuned(invoke, store: Path) -> str:
    return _compared(invoke, store, "tuned")


def test_compare_cli_names_the_pruning_decisions_made_on_noise(invoke, pruned_store):
    text = _compared_tuned(invoke, pruned_store)
    assert "pruning decisions: 1 of 3 pruned arms were stopped within the seeds' noise" in text
    assert "a later rung ([prune] min_epochs)" in text
    assert "adam: lr=0.01 · optimizer=adam stopped at epoch 1, +0.0033 ± 0.0120" in text
    assert "sgd: lr=1.0" not in text
    assert "at the edge of what was tried" in text
    assert "adam: lr=0.001 is the smallest of the 3 lr values tried" in text


@pytest.fixture
def betas_store(store_path):
    """Adam tuned over lr and its own b1 (best at the largest b1 tried), beside SGD, which has
    no b1: the optimizer's hyperparameter is a conditional setting."""
    arms = {  # (optimizer, lr, b1): best validation accuracy at seeds 0, 1, 2
        ("adam", 1e-3, 0.8): [0.80, 0.81, 0.79],
        ("adam", 1e-3, 0.9): [0.84, 0.85, 0.83],
        ("adam", 1e-3, 0.99): [0.87, 0.88, 0.86],
        ("adam", 1e-2, 0.9): [0.70, 0.72, 0.71],
        ("sgd", 0.1, None): [0.85, 0.84, 0.86],
        ("sgd", 1.0, None): [0.60, 0.62, 0.61],
    }
    runs = [
        _curve_run(optimizer, lr, seed, [0.5, val], "finished", opt=(("b1", b1),) if b1 else ())
        for (optimizer, lr, b1), values in arms.items()
        for seed, val in enumerate(values)
    ]
    return _saved_as_sweep(store_path, "betas", runs)


def test_an_optimizers_own_hyperparameter_is_a_setting_of_its_arms_alone(betas_store):
    import optuna

    from costhill.errors import StoreError
    from costhill.results.report import write_report
    from costhill.results.studies import conditional_importance, export_study, importance

    url = f"sqlite:///{betas_store.parent / 'optuna.db'}"
    page = betas_store.parent / "report.html"
    with Store(betas_store) as store:
        result = compare(store, "betas")
        by_b1 = compare(store, "betas", by="opt.b1")
        overall = importance(store, "betas")
        within = conditional_importance(store, "betas")
        assert export_study(store, "betas", url) == 6
        write_report(store, page, sweep="betas", with_hill=False, with_predictions=False)
        with pytest.raises(StoreError, match=r"by 'b1': not a setting of sweep 'betas', whose"):
            compare(store, "betas", by="b1")
    assert result.varying == ["lr", "opt.b1", "optimizer"]
    labels = {row.label for row in result.rows}
    assert "lr=0.1 · optimizer=sgd" in labels  # no opt.b1 at all, not opt.b1=None
    assert "lr=0.001 · opt.b1=0.99 · optimizer=adam" in labels
    assert {c.group: c.chosen for c in result.choices} == {
        "adam": "lr=0.001 · opt.b1=0.99 · optimizer=adam",
        "sgd": "lr=0.1 · optimizer=sgd",
    }
    assert [(e.group, e.setting, e.side) for e in result.edges] == [("adam", "opt.b1", "largest")]
    # Tuned within each b1: SGD's arms, which have none, form their own group.
    tuned_by_b1 = {c.group: c.chosen for c in by_b1.choices}
    assert set(tuned_by_b1) == {"0.8", "0.9", "0.99", "n/a"}
    assert tuned_by_b1["n/a"] == "lr=0.1 · optimizer=sgd"
    # Sweep-wide, b1 is weighed nowhere (SGD lacks it); within Adam's arms it is.
    assert set(overall) == {"lr", "optimizer"}
    assert set(within) == {"adam"} and set(within["adam"]) == {"lr", "opt.b1"}
    assert sum(within["adam"].values()) == pytest.approx(1.0)
    exported = optuna.load_study(study_name="betas", storage=url)
    params = {(t.params["optimizer"], t.params["lr"]): t.params for t in exported.trials}
    assert "opt.b1" not in params[("sgd", 0.1)]
    assert params[("adam", 1e-2)]["opt.b1"] == pytest.approx(0.9)
    text = page.read_text()
    assert "<td class=l>opt.b1 (within optimizer=adam)</td>" in text
    # b1's axis keeps its numbers, with SGD's arms at an n/a tick below them.
    assert '"label":"opt.b1","ticktext":["n\\u002fa","0.8","0.895","0.99"]' in text


def test_compare_cli_shows_an_optimizers_own_hyperparameter_as_its_own_column(
    invoke, betas_store, tmp_path
):
    import csv
    import io

    result = invoke("compare", "--sweep", "betas", "--store", betas_store, "--csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {r["opt.b1"] for r in rows if r["optimizer"] == "sgd"} == {""}
    adam = sorted(float(r["opt.b1"]) for r in rows if r["optimizer"] == "adam")
    assert adam == [0.8, 0.9, 0.9, 0.99]
    text = _compared(invoke, betas_store, "betas", "--importance")
    assert "sweep betas · 6 arms · no target" in text  # not "target None"
    assert "performance profile: none (the sweep has no target; --target sets one)" in text
    missed = _compared(invoke, betas_store, "betas", "--target", "0.95")
    assert "performance profile: no arm reached the target at every seed" in missed
    assert "opt.b1 " in text.split("within optimizer=adam: ")[1]
    assert "importance (fANOVA over the 6 arms that ran their course: share" in text
    as_json = invoke(
        "compare", "--sweep", "betas", "--store", betas_store, "--json", "--importance"
    )
    shares = json.loads(as_json.stdout)["importance"]
    assert (
        set(shares["overall"]) == {"lr", "optimizer"}
        and "opt.b1" in shares["within_optimizer"]["adam"]
    )
    assert (
        f"{shares['overall']['lr']:.2f}" in text.split("importance (fANOVA")[1].split("within")[0]
    )
    both = invoke("compare", "--sweep", "betas", "--store", betas_store, "--csv", "--importance")
    assert both.exit_code == 2 and "--importance: the CSV has one row an arm" in both.stderr
    wrong = invoke("compare", "--sweep", "betas", "--store", betas_store, "--by", "b1")
    assert wrong.exit_code != 0 and "Traceback" not in wrong.output
    assert wrong.stderr.splitlines() == [
        "Error: --by 'b1': not a setting of sweep 'betas', whose arms differ in lr, opt.b1, "
        "optimizer"
    ]
    picture = tmp_path / "parallel.png"
    drawn = invoke("plot", "parallel", "--sweep", "betas", "--store", betas_store, "--out", picture)
    assert drawn.exit_code == 0, drawn.output
    assert picture.stat().st_size > 10_000


def test_compare_recomputes_time_to_a_new_target(compared_store):
    with Store(compared_store) as store:
        result = compare(store, "synthetic", target=0.84)
    reached = {r.label: r.reached for r in result.rows}
    assert sum(reached.values()) == 4  # only adam 3e-3 reaches 0.84 validation accuracy
    row = next(r for r in result.rows if r.reached)
    assert row.epochs_to_target.mean == 2 and row.seconds_to_target.mean == pytest.approx(4.0)


@pytest.mark.parametrize(
    "at,expected",
    [
        (("epochs", 1), 0.75),
        (("steps", 24), 0.75),
        (("examples", 3000), 0.85),
        (("seconds", 2.0), 0.75),
    ],
)
def test_compare_at_an_equal_budget(compared_store, at, expected):
    """Arm adam 3e-3 (validation 0.75 then 0.85 over 2 epochs of 2 s each, 1,500 images)."""
    with Store(compared_store) as store:
        result = compare(store, "synthetic", at=at)
    row = next(r for r in result.rows if "lr=0.003" in r.label)
    assert row.at_budget is not None
    assert row.at_budget.mean == pytest.approx(expected + 0.0015, abs=1e-6)


def test_sign_flip_p_values_are_exact():
    assert sign_flip_p_value([1.0, 1.0, 1.0]) == 0.25
    assert sign_flip_p_value([1.0, -1.0]) == 1.0
    assert sign_flip_p_value([]) == 1.0
    assert sign_flip_p_value([0.5] * 6) == pytest.approx(2 / 64)


def test_sweep_compare_and_export_from_the_cli(invoke, tmp_path, store_path):
    plan_file = tmp_path / "cli.toml"
    plan_file.write_text(SMALL.format(name="cli", budget="epochs = 1", seeds="[0, 1]"))
    result = invoke("sweep", plan_file, "--store", store_path)
    assert result.exit_code == 0, result.output
    assert "8 trained" in result.stdout
    again = invoke("sweep", plan_file, "--store", store_path)
    assert "8 already in the store" in again.stdout
    table = invoke("compare", plan_file, "--store", store_path, "--at", "examples=1700")
    assert table.exit_code == 0 and "tuned on validation" in table.stdout
    at = json.loads(
        invoke(
            "compare", plan_file, "--store", store_path, "--at", "examples=1700", "--json"
        ).stdout
    )
    assert at["at"] == ["examples", 1700.0]
    assert all(row["at_budget"]["n"] == 2 for row in at["rows"])
    bad = invoke("compare", plan_file, "--store", store_path, "--at", "hours=2")
    assert bad.exit_code == 2 and "--at hours" in bad.stderr
    data = json.loads(invoke("compare", "--sweep", "cli", "--store", store_path, "--json").stdout)
    assert len(data["rows"]) == 4 and data["by"] == "optimizer"
    # Named as `sweep` printed it (no plan file or bundled plan of that name is here).
    by_name = json.loads(invoke("compare", "cli", "--store", store_path, "--json").stdout)
    assert by_name["rows"] == data["rows"]
    unknown = invoke("compare", "clj", "--store", store_path)
    assert unknown.exit_code == 2 and "sweep 'clj': no finished runs" in unknown.stderr
    assert "(sweeps: cli)" in unknown.stderr
    listed = json.loads(invoke("runs", "--sweep", "cli", "--store", store_path, "--json").stdout)
    assert len(listed) == 8
    not_a_sweep = invoke("runs", "--sweep", "clj", "--store", store_path)
    assert not_a_sweep.exit_code == 2 and "sweep 'clj': not in" in not_a_sweep.stderr
    gone = invoke("compare", tmp_path / "gone.toml", "--store", store_path)
    assert gone.exit_code == 2 and "gone.toml: no such plan file" in gone.stderr
    csv_text = invoke("compare", "--sweep", "cli", "--store", store_path, "--csv").stdout
    assert len(csv_text.strip().splitlines()) == 5
    out = tmp_path / "runs.csv"
    assert invoke("export", "--sweep", "cli", "--out", out, "--store", store_path).exit_code == 0
    assert len(out.read_text().strip().splitlines()) == 9
    epochs = json.loads(
        invoke("export", "--epochs", "--format", "json", "--store", store_path).stdout
    )
    assert len(epochs) == 8 and "val_accuracy" in epochs[0] and "config.lr" in epochs[0]
    parquet = tmp_path / "runs.parquet"
    assert (
        invoke("export", "--format", "parquet", "--out", parquet, "--store", store_path).exit_code
        == 0
    )
    import pyarrow.parquet as pq

    table = pq.read_table(parquet)
    assert table.num_rows == 8 and "config.lr" in table.column_names
    tb = tmp_path / "tb"
    other = tmp_path / "other.db"
    assert invoke("sweep", plan_file, "--store", other, "--tensorboard", tb).exit_code == 0
    assert len([d for d in tb.iterdir() if d.is_dir()]) == 8
    dry = invoke("sweep", "optimizers", "--dry-run")
    assert "plan optimizers: 135 configs" in dry.stdout
    assert "lr-demo" in invoke("plans").stdout


def test_export_to_mlflow_in_batches_and_only_once(invoke, tmp_path, store_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    # The file store needs no server; http URIs take the same client path.
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    with Store(store_path) as store:
        run_plan(_plan(name="tracked", budget="epochs = 2", seeds="[0]"), store)
    uri = f"file://{tmp_path / 'mlruns'}"
    first = invoke("export", "--sweep", "tracked", "--mlflow", uri, "--store", store_path)
    assert first.exit_code == 0, first.output
    assert "sent 4 runs" in first.stdout
    again = invoke("export", "--sweep", "tracked", "--mlflow", uri, "--store", store_path)
    assert "sent 0 runs" in again.stdout and "4 were already there" in again.stdout
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tracked")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 4
    history = client.get_metric_history(runs[0].info.run_id, "val_accuracy")
    assert [m.step for m in history] == [1, 2]
    assert runs[0].data.params["optimizer"] == "adam"
    unreachable = invoke("export", "--mlflow", "http://127.0.0.1:9", "--store", store_path)
    assert unreachable.exit_code == 2 and "--mlflow http://127.0.0.1:9:" in unreachable.stderr


def test_bad_plans_from_the_cli_store_nothing(invoke, tmp_path, store_path):
    plan_file = tmp_path / "bad.toml"
    plan_file.write_text(
        SMALL.format(name="bad", budget="epochs = 1", seeds="[0]").replace('"he_normal"', '"he"')
    )
    result = invoke("sweep", plan_file, "--store", store_path)
    assert result.exit_code == 2 and "bad.toml:" in result.stderr
    assert "unknown initializer 'he'" in result.stderr
    assert not store_path.exists()
    missing = invoke("compare", "--sweep", "nope", "--store", store_path)
    assert missing.exit_code == 2
    plan_file.write_text(SMALL.format(name="big", budget="epochs = 1", seeds="[0]").replace(
        "batch_size = 100", "batch_size = 1701"))  # fmt: skip
    too_big = invoke("sweep", plan_file, "--store", store_path)
    assert too_big.exit_code == 2 and too_big.stderr.strip().endswith(
        "bad.toml: batch_size 1701: larger than the 1,700 training examples of "
        "fashion-mnist-sample (with 300 held out for validation); use batch_size full for "
        "full-batch descent"
    )
    with Store(store_path, read_only=True) as store:
        assert store.list_runs() == []


@pytest.mark.slow
def test_workers_give_the_numbers_of_a_sequential_sweep(tmp_path):
    plan = _plan(name="parallel", budget="epochs = 1", seeds="[0]")
    with Store(tmp_path / "seq.db") as store:
        run_plan(plan, store)
        sequential = {r["config_hash"]: r for r in store.sweep_runs("parallel")}
    with Store(tmp_path / "par.db") as store:
        report = run_plan(plan, store, workers=2)
        parallel = {r["config_hash"]: r for r in store.sweep_runs("parallel")}
        run = store.load(parallel[next(iter(parallel))]["run_id"])
    assert report.trained == len(plan) == len(parallel)
    assert parallel.keys() == sequential.keys()
    for key, row in parallel.items():
        assert row["test_accuracy"] == pytest.approx(sequential[key]["test_accuracy"], abs=1e-6)
    assert run.params is not None and len(run.step_costs) == 1


def test_cohorts_are_used_where_they_pay_and_match_runs_alone(tmp_path):
    from costhill.sweeps import cohort_groups

    stochastic = _plan(name="sgd1", budget="epochs = 1", seeds="[0, 1]", source="s.toml").configs
    stochastic = tuple(c.replace(batch_size=1, optimizer="sgd") for c in stochastic)
    todo = list(enumerate(stochastic))
    adam = [(i, c.replace(optimizer="adam")) for i, c in todo]
    assert all(len(g) == 1 for g in cohort_groups(adam, "auto"))  # memory-bound: no gain
    groups = cohort_groups(todo, "auto")
    # 2 lrs x 2 inits x 2 seeds share everything else: one cohort of 8.
    assert sorted(len(g) for g in groups) == [8]
    assert all(len(g) == 1 for g in cohort_groups(todo, "never"))
    minibatch = list(enumerate(_plan().configs))
    assert all(len(g) == 1 for g in cohort_groups(minibatch, "auto"))
    assert sorted(len(g) for g in cohort_groups(minibatch, "always")) == [8]
    cosine = [(i, c.replace(schedule="cosine")) for i, c in minibatch]
    assert sorted(len(g) for g in cohort_groups(cosine, "always")) == [4, 4]  # lr apart

    plan = _plan(name="together")
    together, cohort_costs = _sweep_rows_and_costs(tmp_path / "cohort.db", plan, cohorts="always")
    alone, alone_costs = _sweep_rows_and_costs(tmp_path / "alone.db", plan, cohorts="never")
    assert together.keys() == alone.keys()
    for key, row in together.items():
        assert row["data"]["cohort_size"] == 8
        # An arm's first steps are those it takes alone: a wrong learning rate, initializer, data
        # order or optimizer state shared between arms shows by the second step. Later steps only
        # agree to rounding amplified by training (Adam turns gradients near zero into steps of a
        # whole learning rate, whatever their last bits), as two machines' runs do.
        np.testing.assert_allclose(cohort_costs[key][:4], alone_costs[key][:4], rtol=1e-5)
    cohort_mean = np.mean([row["test_accuracy"] for row in together.values()])
    alone_mean = np.mean([row["test_accuracy"] for row in alone.values()])
    assert cohort_mean == pytest.approx(alone_mean, abs=0.005)


def _sweep_rows_and_costs(path, plan, *, cohorts):
    """A plan's stored rows, and each run's first-epoch step costs, by config hash."""
    with Store(path) as store:
        run_plan(plan, store, cohorts=cohorts)
        rows = {r["config_hash"]: r for r in store.sweep_runs(plan.name)}
        costs = {key: np.asarray(store.load(r["run_id"]).step_costs[0]) for key, r in rows.items()}
    return rows, costs


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("bogus://x", r"cannot be used \(Can't load plugin: sqlalchemy.dialects:bogus\)$"),
        ("studies.db", r"not a storage URL; an SQLite file is named sqlite:///studies\.db$"),
        ("sqlite:////no/such/dir/x.db", r"cannot be used \(.*unable to open database file\)$"),
    ],
)
def test_an_optuna_storage_that_cannot_be_used_gets_one_line_naming_the_flag(
    invoke, betas_store, url, reason
):
    result = invoke("export", "--sweep", "betas", "--store", betas_store, "--optuna", url)
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert re.search(rf"--optuna {re.escape(url)}: {reason}", lines[0]), lines[0]


def test_an_optuna_study_already_there_is_refused_not_overwritten(invoke, betas_store):
    url = f"sqlite:///{betas_store.parent / 'studies.db'}"
    first = invoke("export", "--sweep", "betas", "--store", betas_store, "--optuna", url)
    assert first.exit_code == 0, first.output
    again = invoke("export", "--sweep", "betas", "--store", betas_store, "--optuna", url)
    assert again.exit_code != 0
    assert f"--optuna {url}: already holds a study named 'betas'" in again.output
