"""Tuning sweeps (search = "tpe", prune = ...): the sampler and the pruner on a fake objective
whose best point is known; a tuning sweep on the sample whose pruned runs are stored as pruned
and never chosen; a killed tuning sweep resumed into the same study with no trial asked twice;
bad sampler and pruner options named with their file, line and valid choices."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costhill.errors import ConfigError, StoreError
from costhill.results.compare import compare
from costhill.results.report import write_report
from costhill.results.studies import export_study, importance
from costhill.store import Store
from costhill.sweeps import parse_plan, run_plan
from costhill.sweeps.tuning import (
    JOURNAL_SUFFIX,
    _answer,
    _Judge,
    _train_judged,
    journal_path,
    judged_value,
    latin_hypercube,
    make_pruner,
    stored_points,
    studies,
    suggest,
)

# Cheap runs of the sample, shared by the tuning plans below (each adds its name, search, axes).
SAMPLE_RUNS = """\
dataset = "fashion-mnist-sample"
validation = 300
model = "logreg"
batch_size = 100
epochs = 3
seeds = [0, 1]
"""

PLAN = (
    'name = "tuned"\n'
    + SAMPLE_RUNS
    + """\
search = "tpe"
trials = {trials}
prune = "{prune}"

[[axes.optimizer]]
name = "sgd"
lr = {{log = [1e-3, 1e0]}}

[[axes.optimizer]]
name = "adam"
lr = {{log = [1e-4, 1e-1]}}
"""
)


def _plan(trials: int = 4, prune: str = "asha"):
    return parse_plan(PLAN.format(trials=trials, prune=prune), source="tuned.toml")


def test_tpe_finds_the_best_point_of_a_known_objective():
    search = _plan(trials=40).search
    (_, one), *_ = studies(_plan(trials=40))
    assert one.arms[0]["fixed"] == {"optimizer": "sgd"}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=10)
    )
    for _ in range(search.trials):
        trial = study.ask()
        point = suggest(trial, one)
        study.tell(trial, -((math.log10(point["lr"]) + 1.5) ** 2))  # best at lr = 10^-1.5
    assert abs(math.log10(study.best_params["sgd.lr"]) + 1.5) < 0.15
    assert point["optimizer"] == "sgd" and set(study.best_params) == {"optimizer", "sgd.lr"}


@settings(deadline=None)  # the first example imports scipy
@given(n=st.integers(1, 12), seed=st.integers(0, 2**31))
def test_the_startup_trials_draw_each_stratum_of_every_axis_once(n, seed):
    _, (name, search) = studies(_plan(trials=n))
    search = dataclasses.replace(
        search, axes={"init": ["glorot_uniform", "he_normal"], "hidden": [[10], [20, 10]]}
    )
    points = latin_hypercube(search, n, seed)
    assert len(points) == n and all(p["optimizer"] == "adam" for p in points)
    places = sorted(math.log(p["adam.lr"] / 1e-4) / math.log(1e3) for p in points)
    for k, place in enumerate(places):  # one draw in each of n equal parts of the log range
        assert k / n - 1e-6 <= place <= (k + 1) / n + 1e-6
    assert all(1e-4 <= p["adam.lr"] <= 1e-1 for p in points)
    for key, choices in (
        ("init", ["glorot_uniform", "he_normal"]),
        ("hidden", ["[10]", "[20, 10]"]),
    ):
        counts = [sum(p[key] == c for p in points) for c in choices]
        assert max(counts) - min(counts) <= 1  # each choice as often as the strata allow


def _run(seed: int, trial: int = 0) -> Any:
    config = SimpleNamespace(seed=seed, epochs=9, config_hash=lambda: f"trial {trial} seed {seed}")
    return SimpleNamespace(config=config, status="running", epochs=[])


def _judge(trials: list[Any], seeds: int = 2) -> Any:
    hashes = [[f"trial {t} seed {s}" for s in range(seeds)] for t in range(len(trials))]
    return _Judge(trials, hashes)


def _epoch(epoch: int, accuracy: float) -> Any:
    return SimpleNamespace(epoch=epoch, val_accuracy=accuracy)


def test_a_pruned_trial_stops_at_the_epoch_the_pruner_says():
    """Successive halving with a rung at each of epochs 1 and 3 (reduction 3): a trial far below
    the others stops at epoch 1; one in the top third goes on past it."""
    search = _plan(trials=10).search
    study = optuna.create_study(direction="maximize", pruner=make_pruner(search, epochs=9))
    for value in (0.5, 0.6, 0.7, 0.8, 0.9):
        trial = study.ask()
        trial.report(value, 1)
        assert not trial.should_prune()  # what enters them into the rung
        study.tell(trial, value)
    trial = study.ask()
    judge, runs = _judge([trial]), [_run(0), _run(1)]
    for position, run in enumerate(runs):
        judge.on_start(position, run.config)
    judge.on_epoch(runs[0], _epoch(1, 0.10), None)
    assert [r.status for r in runs] == ["running", "running"]  # seed 1 has not reported yet
    judge.on_epoch(runs[1], _epoch(1, 0.12), None)
    assert [r.status for r in runs] == ["pruned", "pruned"]
    assert study.trials[-1].intermediate_values == {1: pytest.approx(0.11)}
    good = study.ask()
    judge, runs = _judge([good]), [_run(0), _run(1)]
    for run in runs:
        judge.on_epoch(run, _epoch(1, 0.95), None)
    assert [r.status for r in runs] == ["running", "running"]


def test_a_batch_of_trials_is_halved_at_its_rung_as_synchronous_successive_halving():
    """Four trials of a new study reach epoch 1 together: with reduction 3 the best one alone
    goes on, whichever order their runs report in (judged one by one as they come, the first
    would go on for want of a rival)."""
    search = _plan(trials=4).search
    study = optuna.create_study(direction="maximize", pruner=make_pruner(search, epochs=9))
    trials = [study.ask() for _ in range(4)]
    judge = _judge(trials, seeds=2)
    runs = [_run(s, t) for t in range(4) for s in range(2)]
    for position, run in enumerate(runs):
        judge.on_start(position, run.config)
    accuracy = {0: 0.70, 1: 0.60, 2: 0.80, 3: 0.75}  # trial 2 is the best
    for run in runs:
        trial = int(run.config.config_hash().split()[1])
        judge.on_epoch(run, _epoch(1, accuracy[trial] + 0.01 * run.config.seed), None)
    assert [r.status for r in runs[4:6]] == ["running", "running"]
    assert all(r.status == "pruned" for r in runs[:4] + runs[6:])
    assert [t.intermediate_values for t in study.trials] == [
        {1: pytest.approx(accuracy[t] + 0.005)} for t in range(4)
    ]


@pytest.mark.parametrize(("metric", "best"), [("val_accuracy", 0), ("val_cost", 2)])
def test_the_pruner_judges_a_batch_on_the_metric_the_plan_names(metric, best):
    """Trial 0 has the best validation accuracy at the rung and trial 2 the lowest validation
    cost: the plan's metric decides which one goes on, and is what the study is told."""
    text = PLAN.format(trials=4, prune="asha").replace('prune = "asha"\n', "")
    text = text.replace("[[axes.optimizer]]", f'[prune]\nrule = "asha"\nmetric = "{metric}"\n\n'
                        "[[axes.optimizer]]", 1)  # fmt: skip
    search = parse_plan(text, source="tuned.toml").search
    assert search.prune_metric == metric
    study = optuna.create_study(direction="maximize", pruner=make_pruner(search, epochs=9))
    trials = [study.ask() for _ in range(4)]
    judge = _Judge(trials, [[f"trial {t} seed 0"] for t in range(4)], metric=search.prune_metric)
    runs = [_run(0, t) for t in range(4)]
    for position, run in enumerate(runs):
        judge.on_start(position, run.config)
    accuracy, cost = [0.80, 0.70, 0.75, 0.60], [0.60, 0.55, 0.40, 0.90]
    for t, run in enumerate(runs):
        record: Any = SimpleNamespace(epoch=1, val_accuracy=accuracy[t], val_cost=cost[t])
        judge.on_epoch(run, record, None)
    assert [r.status for r in runs] == ["running" if t == best else "pruned" for t in range(4)]
    told = accuracy if metric == "val_accuracy" else [math.exp(-c) for c in cost]
    assert [t.intermediate_values for t in study.trials] == [{1: pytest.approx(v)} for v in told]


def test_a_batch_of_trials_trains_as_one_cohort_and_only_its_best_trial_runs_its_course(
    store_path,
):
    text = PLAN.format(trials=4, prune="asha").replace('search = "tpe"\n', "")
    head, arms = text.split("\n[[axes.optimizer]]", 1)
    toml = f'{head}\n[search]\nsampler = "tpe"\nbatch = 4\n\n[[axes.optimizer]]{arms}'
    plan = parse_plan(toml, source="batched.toml")
    assert plan.search.sampler["batch"] == 4
    with Store(store_path) as store:
        report = run_plan(plan, store)
        runs = store.list_runs()
    assert report.trained == 2 * 4 * 2
    for optimizer in ("sgd", "adam"):
        mine = [r for r in runs if r["optimizer"] == optimizer]
        assert all(r["data"]["cohort_size"] == 8 for r in mine)  # 4 trials x 2 seeds
        finished = [r for r in mine if r["status"] == "finished"]
        assert len(finished) == 2 and len({r["lr"] for r in finished}) == 1  # one trial
        assert all(r["epochs"] == 1 for r in mine if r["status"] == "pruned")


def test_a_tuning_sweep_stores_pruned_runs_apart_and_never_chooses_them(
    store_path, tmp_path, invoke
):
    from costhill.engine import COMPILE_CACHE

    plan = _plan(trials=5)
    compiled_before = COMPILE_CACHE.compilations["epoch"]
    with Store(store_path) as store:
        report = run_plan(plan, store)
        runs = store.list_runs()
        assert len(runs) == len(plan) == 2 * 5 * 2 and report.trained == 20
        # Each trial draws a new learning rate, a value of the optimizer state: the study
        # compiles its epoch once an optimizer, not once a trial.
        assert len({r["lr"] for r in runs}) == 10
        assert COMPILE_CACHE.compilations["epoch"] - compiled_before <= 2
        kept = store.load(runs[0]["run_id"], with_params=False)
        assert kept.versions["hyperparameters"] == "in the optimizer state"
        pruned = [r for r in runs if r["status"] == "pruned"]
        finished = [r for r in runs if r["status"] == "finished"]
        assert pruned and finished and report.pruned == len(pruned)
        assert all(r["epochs"] < 3 for r in pruned) and all(r["epochs"] == 3 for r in finished)
        result = compare(store, "tuned")
        compared = {i for row in result.rows for i in _ids(store, row)}
        assert compared == {r["run_id"] for r in finished}
        assert sum(len(row.seeds) for row in result.pruned) == len(pruned)
        chosen = {choice.chosen for choice in result.choices}
        assert not chosen & {row.label for row in result.pruned}
        # Every pruned arm (2 seeds) is set against the arm chosen in its optimizer's group.
        assert {d.pruned for d in result.decisions} == {row.label for row in result.pruned}
        assert all(d.seeds == 2 and d.kept in chosen for d in result.decisions)
        assert store.sweep_pruning("tuned") == ("asha", "val_accuracy")  # what compare weighs
        assert {d.metric for d in result.decisions} == {"val_accuracy"}
        assert set(importance(store, "tuned")) == {"lr", "optimizer"}
        url = f"sqlite:///{tmp_path / 'studies.db'}"
        assert export_study(store, "tuned", url) == 10
        noisy = [bool(d.within_noise) for d in result.decisions]
        page = tmp_path / "report.html"
        write_report(store, page, sweep="tuned", with_hill=False, with_predictions=False)
        text = page.read_text()
        assert "search-parallel" in text
        assert f"importance (fANOVA over {len(finished) // 2} arms)" in text
        assert f"{len(pruned) // 2} arms pruned" in text
        assert f"pruning decisions: {sum(noisy)} of {len(pruned) // 2} pruned arms" in text
        assert "over matched seeds, in validation accuracy" in text
        assert "arms pruned (stopped early by asha on validation accuracy;" in text
        again = run_plan(plan, store)
        assert again.trained == 0 and again.skipped == 20  # pruned runs are not trained again
    exported = optuna.load_study(study_name="tuned", storage=url)
    states = [t.state for t in exported.trials]
    assert states.count(optuna.trial.TrialState.PRUNED) == len(pruned) // 2
    shown = invoke("show", str(pruned[0]["run_id"]), "--store", store_path)
    said = f"pruned after epoch {pruned[0]['epochs']} by asha on validation accuracy (sweep tuned)"
    assert said in shown.stdout.splitlines()[1]
    for run, expected in (
        (pruned[0], [{"sweep": "tuned", "pruner": "asha", "metric": "val_accuracy"}]),
        (finished[0], None),
    ):
        shown = invoke("show", str(run["run_id"]), "--store", store_path, "--json")
        assert json.loads(shown.stdout)["pruned_by"] == expected
    for kind in ("lr", "parallel"):  # pruned arms drawn apart, beside those that ran on
        picture = tmp_path / f"{kind}.png"
        drawn = invoke("plot", kind, "--sweep", "tuned", "--store", store_path, "--out", picture)
        assert drawn.exit_code == 0, drawn.output
        assert picture.stat().st_size > 10_000
    exported_runs = invoke("export", "--sweep", "tuned", "--format", "json", "--store", store_path)
    statuses = [r["status"] for r in json.loads(exported_runs.stdout)]
    assert len(statuses) == 20 and statuses.count("pruned") == len(pruned)  # every trained run
    twice = invoke("export", "--sweep", "tuned", "--optuna", url, "--store", store_path)
    assert twice.exit_code != 0 and "optuna delete-study --study-name tuned" in twice.stderr


def _ids(store, row) -> set[int]:
    return {
        r["run_id"]
        for r in store.sweep_runs("tuned")
        if r["seed"] in row.seeds and all(r["config"].get(k) == v for k, v in row.arm.items())
    }


def test_a_killed_tuning_sweep_resumes_the_same_study(store_path, tmp_path, invoke):
    plan = _plan(trials=4, prune="none")
    epochs_seen = []

    def stop_in_the_third_trial(run, record, costs):
        epochs_seen.append(record.epoch)
        if len(epochs_seen) == 2 * 3 * 2 + 2:  # two trials done, the third one epoch in
            raise KeyboardInterrupt

    with Store(store_path) as store:
        with pytest.raises(KeyboardInterrupt):
            run_plan(plan, store, on_epoch=stop_in_the_third_trial)
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal_path(store)))
        )
        first = optuna.load_study(study_name="tuned.sgd", storage=storage)
        asked = [(t.number, t.params, t.state.name) for t in first.trials]
        # The fourth is one of the startup points, queued when the study was made.
        assert [state for *_, state in asked] == ["COMPLETE", "COMPLETE", "RUNNING", "WAITING"]
        journal = journal_path(store).read_bytes()
        (tmp_path / "tuned.toml").write_text(PLAN.format(trials=4, prune="none"))
        dry = invoke("sweep", str(tmp_path / "tuned.toml"), "--store", store_path, "--dry-run")
        best = max(first.trials[:2], key=lambda t: t.value or 0.0)
        assert (
            f"so far in {store_path}: study tuned.sgd: 2 trials told (0 pruned), the plan asks "
            "for 4; 1 asked and not told (training now, or, if the sweep was killed, first when it "
            "runs again); best "
            f"{best.value:.4f} at sgd.lr={best.params['sgd.lr']:g}"
        ) in " ".join(dry.stdout.split()), dry.output
        assert "study tuned.adam: 0 trials told" not in dry.stdout  # not made yet: not listed
        assert journal_path(store).read_bytes() == journal  # read, nothing written
        ended: list[tuple[int, Any]] = []
        run_plan(plan, store, on_run_end=lambda position, run: ended.append((position, run)))
        runs = store.list_runs()
    # Every run of the plan is said to have ended once, the two told trials' as skipped.
    assert sorted(position for position, _ in ended) == list(range(len(plan)))
    assert [position for position, run in ended if run is None][:4] == [0, 1, 2, 3]
    resumed = optuna.load_study(study_name="tuned.sgd", storage=storage)
    assert [t.number for t in resumed.trials] == [0, 1, 2, 3]  # no trial asked twice
    assert [(t.number, t.params) for t in resumed.trials[:3]] == [(n, p) for n, p, _ in asked[:3]]
    assert all(t.state.name == "COMPLETE" for t in resumed.trials)
    assert len(runs) == len(plan) and {r["status"] for r in runs} == {"finished"}
    assert len({r["config_hash"] for r in runs}) == len(runs)


LOST_JOURNAL_PLAN = (
    'name = "lost"\n'
    + SAMPLE_RUNS
    + """\
trials = {trials}

[search]
sampler = "tpe"
startup = 2  # TPE itself draws from the third trial on: what it draws depends on the history

[prune]
{rule}

[[axes.optimizer]]
name = "sgd"
lr = {{log = [1e-3, 1e0]}}
"""
)


def _history(path) -> list[tuple]:
    """What a study holds of each trial that the sampler or the pruner reads, its parameters to
    the 6 digits a config keeps of them (a rebuilt study has only those)."""
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    study = optuna.load_study(study_name="lost.sgd", storage=storage)
    return [
        (
            t.number,
            {k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in t.params.items()},
            t.state.name,
            t.value,
            t.intermediate_values,
            {k: v for k, v in t.system_attrs.items() if k.startswith("completed_rung")},
        )
        for t in study.trials
    ]


@pytest.mark.parametrize(
    "rule", ['rule = "asha"', 'rule = "hyperband"', 'rule = "median"\nstartup = 2']
)
def test_a_lost_journal_is_rebuilt_from_the_store_and_its_study_goes_on_as_before(tmp_path, rule):
    """With the journal deleted, the sweep's studies are made again from the store: its stored
    points asked first, each told its epochs from its runs, none trained again. The rebuilt study
    holds what the lost one held (the pruner's rungs too), and asks the trials the lost one would
    have asked next, also when the plan asks for more trials at once."""
    import shutil

    def plan(trials: int) -> Any:
        return parse_plan(LOST_JOURNAL_PLAN.format(trials=trials, rule=rule), source="lost.toml")

    kept, lost, more = tmp_path / "kept.db", tmp_path / "lost.db", tmp_path / "more.db"
    with Store(kept) as store:
        run_plan(plan(5), store)
        before = _history(journal_path(store))
    shutil.copy(kept, lost)
    shutil.copy(kept, more)
    assert {"PRUNED", "COMPLETE"} <= {state for _, _, state, *_ in before}
    assert any(rungs for *_, rungs in before) == ("median" not in rule)  # judged at rungs
    with Store(lost) as store:
        rebuilt = run_plan(plan(5), store)
        assert (rebuilt.trained, rebuilt.skipped, rebuilt.replayed) == (0, 10, 5)
        assert _history(journal_path(store)) == before
    with Store(kept) as store:
        run_plan(plan(7), store)
        went_on = _history(journal_path(store))
    assert len(went_on) == 7 and went_on[:5] == before
    for path in (lost, more):  # rebuilt by the last run, or by this one
        with Store(path) as store:
            report = run_plan(plan(7), store)
            assert _history(journal_path(store)) == went_on, path.name
    assert (report.skipped, report.replayed, report.trained) == (10, 5, 4)
    with Store(kept) as store:  # asked for fewer trials than the study holds: none trained
        fewer = run_plan(plan(5), store)
    assert (fewer.planned, fewer.skipped, fewer.trained) == (10, 10, 0)


STORED_POINTS_PLAN = """\
name = "points"
dataset = "fashion-mnist-sample"
validation = 300
model = "mlp"
batch_size = 100
epochs = {epochs}
seeds = [0]
search = "tpe"
trials = 4

[axes]
hidden = [[10], [20, 10]]

[[axes.optimizer]]
name = "adam"
lr = {{log = [{low}, 1e-1]}}
"""


@pytest.mark.parametrize(
    ("epochs", "low", "kept"),
    [(1, "1e-4", "all"), (1, "lowest", "all but the lowest rate"), (2, "1e-4", "none")],
)
def test_the_stored_points_of_a_study_are_read_back_only_where_the_plan_makes_them(
    store_path, epochs, low, kept
):
    """A study is made again from the store with the very parameters its trials were asked
    (a list of widths as Optuna's JSON choice): an arm outside a range since narrowed, or
    trained at another budget, is no point of the plan's space and is left out."""
    plan = parse_plan(STORED_POINTS_PLAN.format(epochs=1, low="1e-4"), source="points.toml")
    with Store(store_path) as store:
        run_plan(plan, store)
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal_path(store)))
        )
        asked = [
            t.params for t in optuna.load_study(study_name="points.adam", storage=storage).trials
        ]
        rates = sorted(p["adam.lr"] for p in asked)
        if low == "lowest":
            low = f"{rates[0] * 1.01:.6g}"
        now = parse_plan(STORED_POINTS_PLAN.format(epochs=epochs, low=low), source="points.toml")
        (_, search), *_ = studies(now)
        found = stored_points(store, "points", search)
    expected = {
        "all": asked,
        "all but the lowest rate": [p for p in asked if p["adam.lr"] != rates[0]],
        "none": [],
    }[kept]
    assert {p["hidden"] for p in asked} == {"[10]", "[20, 10]"}  # Optuna's JSON choices
    assert found == expected and len(expected) == {"all": 4, "none": 0}.get(kept, 3)


def test_a_plan_changed_under_a_tuning_sweep_resumes_only_where_optuna_can(store_path):
    small = PLAN.replace("epochs = 3", "epochs = 1").replace("seeds = [0, 1]", "seeds = [0]")

    def plan(trials: int, adam_lr: str = "{log = [1e-4, 1e-1]}", sgd_lr: str = "") -> Any:
        text = small.format(trials=trials, prune="none").replace(
            "lr = {log = [1e-4, 1e-1]}", f"lr = {adam_lr}"
        )
        if sgd_lr:
            text = text.replace("lr = {log = [1e-3, 1e0]}", f"lr = {sgd_lr}")
        return parse_plan(text, source="tuned.toml")

    with Store(store_path) as store:
        run_plan(plan(trials=1), store)
        journal = journal_path(store).read_bytes()
        ranges = store.sweep_ranges("tuned")
        assert ranges == [("adam", "lr", True, 1e-4, 1e-1), ("sgd", "lr", True, 1e-3, 1.0)]
        for changed, message in [
            (
                plan(trials=2, adam_lr="{range = [1e-4, 1e-1]}"),
                r"^sweep 'tuned': adam.lr: its study in .*runs.db.optuna.journal asked a log range "
                r"\[0.0001, 0.1\], the plan now a range \[0.0001, 0.1\], and one Optuna study "
                r"cannot hold both: give the plan another name, or another store$",
            ),
            (
                plan(trials=2, sgd_lr="[0.01, 0.1]"),
                r"sgd.lr: .* asked a log range \[0.001, 1\], the plan now a choice of 0.01, 0.1,",
            ),
        ]:
            with pytest.raises(ConfigError, match=message):
                run_plan(changed, store)
            # Refused before either study moved: sgd's, checked first, is not a trial further.
            assert journal_path(store).read_bytes() == journal
            assert len(store.list_runs()) == 2 and store.sweep_ranges("tuned") == ranges
        # A range made wider resumes the same studies: one more trial each.
        wider = run_plan(plan(trials=2, adam_lr="{log = [1e-5, 1e-1]}"), store)
        assert (wider.trained, wider.skipped) == (2, 2)
        assert store.sweep_ranges("tuned")[0] == ("adam", "lr", True, 1e-5, 1e-1)
        adam = [r for r in store.list_runs() if r["optimizer"] == "adam"]
    assert len(adam) == 2


@pytest.mark.parametrize(
    ("tail", "why"),
    [
        (b"garbage{\n", r"Expecting value"),
        (b'{"op_code":0', r"it is cut short, with no line end"),
        (b"\xff\xfe\n", r"can't decode"),
    ],
)
def test_a_damaged_journal_is_named_and_left_as_it_is(store_path, tail, why, invoke, tmp_path):
    small = PLAN.replace("epochs = 3", "epochs = 1").replace("seeds = [0, 1]", "seeds = [0]")
    plan = parse_plan(small.format(trials=1, prune="none"), source="tuned.toml")
    more = parse_plan(small.format(trials=2, prune="none"), source="tuned.toml")
    with Store(store_path) as store:
        run_plan(plan, store)
        path = journal_path(store)
        lines = path.read_bytes().count(b"\n")
        damaged = path.read_bytes() + tail
        path.write_bytes(damaged)
        # Optuna alone reads past a bad last line, then writes after it: unreadable for good.
        damage = rf"^journal .*: not Optuna's \(line {lines + 1}: .*{why}"
        with pytest.raises(StoreError, match=damage):
            run_plan(more, store)
        (tmp_path / "tuned.toml").write_text(small.format(trials=2, prune="none"))
        dry = invoke("sweep", str(tmp_path / "tuned.toml"), "--store", store_path, "--dry-run")
        assert dry.exit_code != 0 and "Traceback" not in dry.output
        assert re.search(damage.replace("^", "^Error: "), dry.stderr, re.MULTILINE), dry.output
        assert path.read_bytes() == damaged
        assert len(store.list_runs()) == 2
        path.rename(path.with_name("aside"))  # as the message says: the store rebuilds it
        rebuilt = run_plan(more, store)
        assert (rebuilt.skipped, rebuilt.replayed, rebuilt.trained) == (2, 2, 2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('search = "tpe"', r"tuned.toml:8: search: 'bayes': unknown search; valid: grid, random"),
        ('prune = "asha"', r"tuned.toml:10: prune: 'sometimes': unknown rule; valid: none, asha"),
    ],
)
def test_an_unknown_sampler_or_pruner_is_named(change, message):
    text = PLAN.format(trials=4, prune="asha")
    bad = change.replace('"tpe"', '"bayes"') if "search" in change else 'prune = "sometimes"'
    with pytest.raises(ConfigError, match=message):
        parse_plan(text.replace(change, bad), source="tuned.toml")


@pytest.mark.parametrize("budget", ["steps = 40", "examples = 3000", "seconds = 2"])
def test_a_tpe_plan_over_another_budget_is_refused_naming_it_and_what_takes_it(budget):
    text = PLAN.format(trials=4, prune="none").replace("epochs = 3\n", budget + "\n")
    line = text.splitlines().index(budget) + 1
    kind = budget.split()[0]
    with pytest.raises(
        ConfigError,
        match=rf"tuned.toml:{line}: {kind}: a tpe search needs an "
        r"epochs budget: .*\(a grid or random search takes this budget\)$",
    ):
        parse_plan(text, source="tuned.toml")


def test_an_option_named_in_both_tables_is_blamed_on_its_own_line():
    """``startup`` is an option of TPE's ``[search]`` and of the median rule's ``[prune]``: a
    bad one in ``[prune]`` is its line, not the first ``startup`` in the file."""
    text = PLAN.format(trials=4, prune="asha").replace('search = "tpe"\n', "")
    text = text.replace('prune = "asha"\n', "")
    tables = '[search]\nsampler = "tpe"\nstartup = 2\n\n[prune]\nrule = "median"\nstartup = -1\n'
    text = text.replace("[[axes.optimizer]]", tables + "\n[[axes.optimizer]]", 1)
    line = text.splitlines().index("startup = -1") + 1
    with pytest.raises(ConfigError, match=rf"tuned.toml:{line}: startup: prune median: startup"):
        parse_plan(text, source="tuned.toml")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"search.seed": -1}, "overrides search.seed: search: seed must be a whole number"),
        ({"prune.warmup": 2}, "overrides prune.warmup: prune asha has no option 'warmup'"),
        ({"prune.rule": "sometimes"}, "overrides prune.rule: 'sometimes': unknown rule"),
        ({"search": "random", "search.startup": 2}, "overrides search.startup: random search "),
        ({"sampler.seed": 1}, "overrides sampler.seed: unknown plan key; valid: .*search.OPTION"),
    ],
)
def test_a_tables_option_set_from_the_command_line_is_checked_as_if_written(overrides, message):
    with pytest.raises(ConfigError, match=message):
        parse_plan(PLAN.format(trials=4, prune="asha"), source="tuned.toml", overrides=overrides)


def test_a_tables_option_set_from_the_command_line_joins_what_the_plan_says():
    """``search = "tpe"`` and ``prune = "asha"`` given as names take options from --set as a
    table would, and a table keeps the options the file gave it."""
    text = PLAN.format(trials=4, prune="asha")
    plan = parse_plan(
        text, source="tuned.toml", overrides={"search.seed": 3, "prune.min_epochs": 2}
    )
    assert (plan.search.kind, plan.search.sampler["seed"]) == ("tpe", 3)
    assert (plan.search.prune, plan.search.prune_options["min_epochs"]) == ("asha", 2)
    written = text.replace('prune = "asha"\n', "").replace(
        "[[axes.optimizer]]", '[prune]\nrule = "hyperband"\nreduction = 4\n\n[[axes.optimizer]]', 1
    )
    plan = parse_plan(written, source="tuned.toml", overrides={"prune.min_epochs": 2})
    assert plan.search.prune == "hyperband"
    assert plan.search.prune_options == {"min_epochs": 2, "reduction": 4}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            '[prune]\nrule = "asha"\nmin_epochs = 1\neta = 3\n',
            r"tuned.toml:{line}: eta: prune asha has no option 'eta'; valid: min_epochs, reduction",
        ),
        (
            '[search]\nsampler = "tpe"\nstartups = 5\n',
            r"tuned.toml:{line}: startups: search has no option 'startups'; valid: startup, seed, "
            "batch",
        ),
        (
            '[search]\nsampler = "tpe"\nbatch = 0\n',
            r"tuned.toml:{line}: batch: search: batch must be a whole number, 1 or more \(got 0\)",
        ),
        (
            '[prune]\nrule = "median"\nstartup = -1\n',
            r"tuned.toml:{line}: startup: prune median: startup must be a whole number, 0 or more",
        ),
        (
            '[prune]\nrule = "asha"\nreduction = 1\n',
            r"tuned.toml:{line}: reduction: prune asha: reduction must be a whole number, 2 or "
            r"more \(got 1\)",
        ),
        (
            '[prune]\nrule = "hyperband"\nmin_epochs = 0\n',
            r"tuned.toml:{line}: min_epochs: prune hyperband: min_epochs must be a whole number, "
            r"1 or more \(got 0\)",
        ),
        (
            '[prune]\nrule = "asha"\nmin_epochs = 3\n',
            r"tuned.toml:{line}: min_epochs: prune asha judges trials from epoch 3, but the plan "
            "trains 3 epochs: the first judged epoch must come before the last",
        ),
        (
            '[prune]\nrule = "asha"\nmetric = "val_loss"\n',
            r"tuned.toml:{line}: metric: prune asha: 'val_loss': unknown metric; valid: "
            "val_accuracy, val_cost",
        ),
        (
            '[prune]\nrule = "none"\nmetric = "val_cost"\n',
            r"tuned.toml:{line}: metric: prune none has no option 'metric'; valid: none",
        ),
        (
            '[search]\nsampler = "cmaes"\n',
            r"tuned.toml:{line}: sampler: 'cmaes': unknown sampler; valid: grid, random, tpe",
        ),
        (  # a table with no rule was "None: unknown rule"
            "[prune]\nmin_epochs = 1\n",
            r"tuned.toml:{line_before}: prune: \[prune\] needs rule = one of: none, asha, "
            "hyperband, median",
        ),
        (  # found by the fuzzer: a table where the rule's name goes raised a TypeError
            "[prune]\nrule = {log = [1e-4, 1e-2]}\n",
            r"tuned.toml:{line}: rule: \{{'log': \[0.0001, 0.01\]\}}: unknown rule; valid: none, "
            "asha,",
        ),
    ],
)
def test_an_unknown_option_is_named_with_the_valid_ones(table, message):
    text = PLAN.format(trials=4, prune="asha").replace('search = "tpe"\n', "")
    text = text.replace('prune = "asha"\n', "")
    if "[search]" not in table:
        text = text.replace("trials = 4\n", 'trials = 4\nsearch = "tpe"\n')
    text = text.replace("[[axes.optimizer]]", table + "\n[[axes.optimizer]]", 1)
    culprit = table.strip().splitlines()[-1]
    line = text.splitlines().index(culprit) + 1
    with pytest.raises(ConfigError, match=message.format(line=line, line_before=line - 1)):
        parse_plan(text, source="tuned.toml")


def _asking(prune_at: int | None) -> tuple[list[tuple[Any, ...]], Any]:
    """A driver's answers, as a worker's ``ask`` gets them: stop at epoch ``prune_at``."""
    asked: list[tuple[Any, ...]] = []

    def ask(question: tuple[Any, ...]) -> Any:
        asked.append(question)
        if question[0] == "should_prune":
            return [q for q in asked if q[0] == "report"][-1][2] == prune_at
        return None

    return asked, ask


@pytest.mark.parametrize(
    ("prune_at", "reported", "metric"),
    [
        (None, set(), "val_accuracy"),
        (1, set(), "val_accuracy"),
        (2, {1}, "val_accuracy"),
        (None, set(), "val_cost"),
    ],
)
def test_a_trial_trained_elsewhere_reports_its_seeds_mean_and_stops_when_told(
    sample, prune_at, reported, metric
):
    from costhill import RunConfig

    base = RunConfig(
        dataset="fashion-mnist-sample", validation=300, model="logreg", batch_size=100,
        epochs=3, optimizer="sgd", lr=0.1,
    )  # fmt: skip
    configs = [base.replace(seed=seed) for seed in (0, 1)]
    asked, ask = _asking(prune_at)
    runs = _train_judged(configs, sample, ask, reported, metric)
    stopped = prune_at or 3
    assert [r.status for r in runs] == (["pruned"] * 2 if prune_at else ["finished"] * 2)
    assert [len(r.epochs) for r in runs] == [stopped, stopped]
    reports = [q for q in asked if q[0] == "report"]
    assert [q[2] for q in reports] == [e for e in range(1, stopped + 1) if e not in reported]
    for _, value, epoch in reports:  # the seeds' mean, as the driver's study is told it
        mean = sum(judged_value(r.epochs[epoch - 1], metric) for r in runs) / 2
        assert value == pytest.approx(mean)
        assert 0 < value < 1 and (metric == "val_accuracy") == (
            value == pytest.approx(sum(r.epochs[epoch - 1].val_accuracy for r in runs) / 2)
        )
    # Asked after each epoch it reports but the last (stopping a run at its end saves nothing);
    # a resumed trial is not judged again at an epoch it had reported.
    assert asked.count(("should_prune",)) == sum(q[2] < 3 for q in reports)


def test_the_driver_answers_a_workers_questions_from_the_trials_study():
    study = optuna.create_study(direction="maximize", pruner=make_pruner(_plan().search, epochs=9))
    first = study.ask()
    assert _answer(first, ("report", 0.9, 1)) is None
    assert _answer(first, ("should_prune",)) is False  # the first at its rung goes on
    study.tell(first, 0.9)
    second = study.ask()
    _answer(second, ("report", 0.1, 1))
    assert _answer(second, ("should_prune",)) is True
    assert study.trials[1].intermediate_values == {1: 0.1}


def _queued_study(store: Store, name: str, lrs: list[float]) -> None:
    """The study a sweep will open, made beforehand with its first trials queued."""
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal_path(store)))
    )
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    for lr in lrs:
        study.enqueue_trial({"optimizer": "sgd", "sgd.lr": lr})


@pytest.mark.slow  # spawns worker processes: about 30 s
def test_worker_processes_train_batches_of_trials_the_driver_asks_and_tells(store_path):
    text = PLAN.format(trials=4, prune="none").replace("seeds = [0, 1]", "seeds = [0]")
    text = text.replace("epochs = 3", "epochs = 1")
    plan = parse_plan(text.split('[[axes.optimizer]]\nname = "adam"')[0], source="tuned.toml")
    with Store(store_path) as store:
        report = run_plan(plan, store, workers=2)
        assert report.trained == 4 and len(store.list_runs()) == 4
        assert report.replayed == 0  # trained here, though no worker reported an epoch
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal_path(store)))
        )
        study = optuna.load_study(study_name="tuned.sgd", storage=storage)
        assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4


@pytest.mark.slow  # spawns worker processes: about 40 s
def test_worker_processes_train_trials_the_driver_prunes(store_path):
    """ASHA (rung at epochs 1 and 2, reduction 2) over trials trained by two worker processes,
    queued so that one good trial (lr 0.3) starts first beside a hopeless one (lr 1e-5): by the
    time the third trial (hopeless too) reaches epoch 1 the good one has reported there, so the
    third is stopped at epoch 1, whichever of the first two reports first."""
    text = PLAN.format(trials=4, prune="asha").split('[[axes.optimizer]]\nname = "adam"')[0]
    text = text.replace('prune = "asha"', '[prune]\nrule = "asha"\nreduction = 2\n')
    text = text.replace("lr = {log = [1e-3, 1e0]}", "lr = {log = [1e-6, 1e0]}")
    plan = parse_plan(text, source="tuned.toml")
    with Store(store_path) as store:
        _queued_study(store, "tuned.sgd", [0.3, 1e-5, 2e-5, 3e-5])
        report = run_plan(plan, store, workers=2)
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal_path(store)))
        )
        trials = optuna.load_study(study_name="tuned.sgd", storage=storage).trials
        assert [t.params["sgd.lr"] for t in trials] == [0.3, 1e-5, 2e-5, 3e-5]
        assert report.trained == 8 and report.pruned >= 2
        assert trials[0].state.name == "COMPLETE" and trials[2].state.name == "PRUNED"
        for trial in trials:
            rows = store.latest_runs(trial.user_attrs["config_hashes"]).values()
            if trial.state.name == "PRUNED":  # stopped at the epoch it last reported
                stopped = max(trial.intermediate_values)
                assert {(r["status"], r["epochs"]) for r in rows} == {("pruned", stopped)}
            else:
                assert {(r["status"], r["epochs"]) for r in rows} == {("finished", 3)}
        assert trials[2].intermediate_values.keys() == {1}


def test_a_tuning_plans_dry_run_says_its_sampler_pruner_and_every_studys_space(invoke):
    dry = invoke("sweep", "optimizers-tuned", "--dry-run")
    assert dry.exit_code == 0, dry.output
    lines = dry.stdout.splitlines()
    assert lines[0].startswith("plan optimizers-tuned: tpe search, 9 studies of 4 trials × 3 seeds")
    one = invoke(
        "sweep", "optimizers-tuned", "--dry-run", "--set", "seeds=[0]", "--set", "trials=1"
    )
    assert "9 studies of 1 trial × 1 seed (9 runs)" in one.stdout.splitlines()[0]
    assert "sampler: TPE, seed 0, its first trial drawn at random, 1 asked" in one.stdout
    none = invoke("sweep", "optimizers-tuned", "--dry-run", "--set", "search.startup=0")
    assert "sampler: TPE, seed 0, no Latin hypercube start, 4 asked at a time" in none.stdout
    assert "sampler: TPE, seed 0, its first 4 trials a Latin hypercube, 4 asked at a time" in lines
    assert (
        "pruner: asha from epoch 1, one trial in 3 going on at each rung, judging validation "
        "cost after each epoch"
    ) in lines
    studies_said = [line for line in lines if line.startswith("study ")]
    assert len(studies_said) == 9
    assert "study optimizers-tuned.sgd: sgd.lr a log range [0.01, 1]" in studies_said
    assert "study optimizers-tuned.lion: lion.lr a log range [1e-05, 0.001]" in studies_said
    # `--set prune=none` is the rule "none", not a value missing.
    unpruned = invoke("sweep", "optimizers-tuned", "--dry-run", "--set", "prune=none")
    assert "pruner: none: every trial trains its whole budget" in unpruned.stdout
    median = invoke("sweep", "optimizers-tuned", "--dry-run", "--set", "prune=median")
    assert "pruner: median from epoch 1, after 5 trials, judging validation accuracy" in (
        " ".join(median.stdout.split())
    )


def test_a_dry_run_lists_as_fixed_only_the_settings_no_study_searches(invoke, tmp_path):
    plan = tmp_path / "sizes.toml"
    plan.write_text(
        'name = "sizes"\ndataset = "fashion-mnist-sample"\nbatch_size = 64\nepochs = 1\n'
        'seeds = [0]\nsearch = "tpe"\ntrials = 2\n\n[axes]\n'
        "batch_size = {log = [16, 128], int = true}\n\n"
        '[[axes.optimizer]]\nname = "adam"\nlr = {log = [1e-4, 1e-2]}\n'
    )
    dry = invoke("sweep", str(plan), "--dry-run")
    assert dry.exit_code == 0, dry.output
    said = dry.stdout.splitlines()
    assert "study sizes.adam: batch_size a log range of whole numbers [16, 128]; " in said[3]
    fixed = json.loads(next(line for line in said if line.startswith("every trial: "))[13:])
    assert fixed["epochs"] == 1 and "batch_size" not in fixed  # the study draws it


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        (
            "[axes]\nlr = [1e-3]\n",
            r"one.toml:7: axes: nothing to search: every axis \(lr\) has one",
        ),
        (
            '[axes]\nlr = [1e-3]\n\n[[axes.optimizer]]\nname = "adam"\n\n[[axes.optimizer]]\n'
            'name = "sgd"\nlr = [1e-2, 1e-1]\n',
            r"one.toml:11: name: adam's study: nothing to search: every axis \(lr\) has one value",
        ),
    ],
)
def test_a_tpe_study_with_one_point_is_refused_before_training(axes, message):
    text = 'name = "one"\nepochs = 2\nseeds = [0]\nsearch = "tpe"\ntrials = 4\n\n' + axes
    with pytest.raises(ConfigError, match=message):
        parse_plan(text, source="one.toml")


def test_a_sweep_rebuilt_from_the_store_says_how_many_trials_it_told_from_there(invoke, tmp_path):
    plan, store = tmp_path / "lost.toml", tmp_path / "runs.db"
    plan.write_text(LOST_JOURNAL_PLAN.format(trials=3, rule='rule = "asha"'))
    first = invoke("sweep", str(plan), "--store", store)
    assert first.exit_code == 0, first.output
    assert "told from runs the store held" not in first.stdout
    Path(f"{store}{JOURNAL_SUFFIX}").unlink()
    again = invoke("sweep", str(plan), "--store", store)
    assert again.exit_code == 0, again.output
    assert (
        "sweep lost: 6 configs · 0 trained · 6 already in the store · 3 trials told from runs "
        "the store held · 0 diverged"
    ) in again.stdout


def test_a_new_studys_first_points_are_queued_once_each(tmp_path):
    """Four strata of a choice of two give each choice twice: queued once each, the other two
    trials are TPE's own draws, not a config trained again under another trial number."""
    from costhill.sweeps.journal import SweepJournal
    from costhill.sweeps.tuning import open_study

    text = LOST_JOURNAL_PLAN.format(trials=4, rule='rule = "none"').replace("startup = 2", "")
    text = text.replace(
        "[[axes.optimizer]]", '[axes]\ninit = ["glorot_uniform", "he_normal"]\n\n[[axes.optimizer]]'
    ).replace("lr = {log = [1e-3, 1e0]}", "lr = 0.1")
    (name, search), *_ = studies(parse_plan(text, source="lost.toml"))
    journal = SweepJournal(str(tmp_path / "runs.db.optuna.journal"))
    try:
        study = open_study(search, journal, name)
        queued = [t.system_attrs["fixed_params"]["init"] for t in study.trials]
    finally:
        journal.close()
    assert sorted(queued) == ["glorot_uniform", "he_normal"]


def test_two_sweeps_making_one_new_study_at_once_queue_its_first_points_once(tmp_path):
    """Each sweep reads whether the study is new, then queues its first points: the journal is
    held between the two, so the sweep that comes second finds them queued and queues none.
    (Each here would queue a point of its own, and reads the store slowly, so that both would
    read the study new were it not held.)"""
    import threading
    import time

    from costhill.sweeps.journal import SweepJournal
    from costhill.sweeps.tuning import open_study

    text = LOST_JOURNAL_PLAN.format(trials=4, rule='rule = "none"')
    (name, search), *_ = studies(parse_plan(text, source="lost.toml"))
    path = str(tmp_path / "runs.db.optuna.journal")
    queued: list[list[dict[str, Any]]] = []

    def open_one(rate: float) -> None:
        def slow_store() -> list[dict[str, Any]]:
            time.sleep(0.3)
            return [{"sgd.lr": rate}]

        journal = SweepJournal(path)
        try:
            study = open_study(search, journal, name, stored=slow_store)
            queued.append([t.system_attrs["fixed_params"] for t in study.trials])
        finally:
            journal.close()

    sweeps = [threading.Thread(target=open_one, args=(rate,)) for rate in (0.01, 0.1)]
    for sweep in sweeps:
        sweep.start()
    for sweep in sweeps:
        sweep.join(timeout=30)
    assert len(queued) == 2
    assert queued[0] == queued[1] and queued[0] in ([{"sgd.lr": 0.01}], [{"sgd.lr": 0.1}])


def test_a_journal_on_a_file_system_without_locks_still_opens_its_study(tmp_path, monkeypatch):
    import errno
    import fcntl

    from costhill.sweeps.journal import SweepJournal
    from costhill.sweeps.tuning import open_study

    def no_locks(descriptor: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    text = LOST_JOURNAL_PLAN.format(trials=4, rule='rule = "none"')
    (name, search), *_ = studies(parse_plan(text, source="lost.toml"))
    journal = SweepJournal(str(tmp_path / "runs.db.optuna.journal"))
    try:
        study = open_study(search, journal, name)
    finally:
        journal.close()
    assert len(study.trials) == 2  # the plan's two first points, queued
