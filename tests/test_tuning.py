"""Tuning sweeps (search = "tpe", prune = ...): the sampler and the pruner on a fake objective
whose best point is known; a tuning sweep on the sample whose pruned runs are stored as pruned
and never chosen; a killed tuning sweep resumed into the same study with no trial asked twice;
bad sampler and pruner options named with their file, line and valid choices."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import optuna
import pytest

from costhill.errors import ConfigError
from costhill.results.compare import compare
from costhill.results.report import write_report
from costhill.results.studies import export_study, importance
from costhill.store import Store
from costhill.sweeps import parse_plan, run_plan
from costhill.sweeps.tuning import _Judge, journal_path, make_pruner, studies, suggest

PLAN = """\
name = "tuned"
dataset = "fashion-mnist-sample"
validation = 300
model = "logreg"
batch_size = 100
epochs = 3
seeds = [0, 1]
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


def _run(seed: int) -> Any:
    return SimpleNamespace(config=SimpleNamespace(seed=seed), status="running", diverged_step=None)


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
    judge, runs = _Judge(trial, seeds=2), [_run(0), _run(1)]
    judge.on_epoch(runs[0], _epoch(1, 0.10), None)
    assert [r.status for r in runs] == ["running", "running"]  # seed 1 has not reported yet
    judge.on_epoch(runs[1], _epoch(1, 0.12), None)
    assert [r.status for r in runs] == ["pruned", "pruned"]
    assert study.trials[-1].intermediate_values == {1: pytest.approx(0.11)}
    good = study.ask()
    judge, runs = _Judge(good, seeds=2), [_run(0), _run(1)]
    for run in runs:
        judge.on_epoch(run, _epoch(1, 0.95), None)
    assert [r.status for r in runs] == ["running", "running"]


def test_a_tuning_sweep_stores_pruned_runs_apart_and_never_chooses_them(store_path, tmp_path):
    plan = _plan(trials=5)
    with Store(store_path) as store:
        report = run_plan(plan, store)
        runs = store.list_runs()
        assert len(runs) == len(plan) == 2 * 5 * 2 and report.trained == 20
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
        assert set(importance(store, "tuned")) == {"lr", "optimizer"}
        url = f"sqlite:///{tmp_path / 'studies.db'}"
        assert export_study(store, "tuned", url) == 10
        page = tmp_path / "report.html"
        write_report(store, page, sweep="tuned", with_hill=False, with_predictions=False)
        text = page.read_text()
        assert "search-parallel" in text and "importance (fANOVA)" in text
        assert f"{len(pruned) // 2} arms pruned" in text
        again = run_plan(plan, store)
        assert again.trained == 0 and again.skipped == 20  # pruned runs are not trained again
    exported = optuna.load_study(study_name="tuned", storage=url)
    states = [t.state for t in exported.trials]
    assert states.count(optuna.trial.TrialState.PRUNED) == len(pruned) // 2


def _ids(store, row) -> set[int]:
    return {
        r["run_id"]
        for r in store.sweep_runs("tuned")
        if r["seed"] in row.seeds and all(r["config"].get(k) == v for k, v in row.arm.items())
    }


def test_a_killed_tuning_sweep_resumes_the_same_study(store_path, tmp_path):
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
        assert [state for *_, state in asked] == ["COMPLETE", "COMPLETE", "RUNNING"]
        run_plan(plan, store)
        runs = store.list_runs()
    resumed = optuna.load_study(study_name="tuned.sgd", storage=storage)
    assert [t.number for t in resumed.trials] == [0, 1, 2, 3]  # no trial asked twice
    assert [(t.number, t.params) for t in resumed.trials[:3]] == [(n, p) for n, p, _ in asked]
    assert all(t.state.name == "COMPLETE" for t in resumed.trials)
    assert len(runs) == len(plan) and {r["status"] for r in runs} == {"finished"}
    assert len({r["config_hash"] for r in runs}) == len(runs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('search = "tpe"', r"tuned.toml:8: search: must be 'grid', 'random' or 'tpe'"),
        ('prune = "asha"', r"tuned.toml:10: prune: 'sometimes': unknown rule; valid: none, asha"),
    ],
)
def test_an_unknown_sampler_or_pruner_is_named(change, message):
    text = PLAN.format(trials=4, prune="asha")
    bad = change.replace('"tpe"', '"bayes"') if "search" in change else 'prune = "sometimes"'
    with pytest.raises(ConfigError, match=message):
        parse_plan(text.replace(change, bad), source="tuned.toml")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            '[prune]\nrule = "asha"\nmin_epochs = 1\neta = 3\n',
            r"tuned.toml:{line}: eta: prune asha has no option 'eta'; valid: min_epochs, reduction",
        ),
        (
            '[search]\nsampler = "tpe"\nstartups = 5\n',
            r"tuned.toml:{line}: startups: search has no option 'startups'; valid: startup, seed",
        ),
        ('[prune]\nrule = "median"\nstartup = -1\n', r"tuned.toml:{line}: startup: prune median: "),
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
    with pytest.raises(ConfigError, match=message.format(line=line)):
        parse_plan(text, source="tuned.toml")


@pytest.mark.slow  # spawns worker processes: about 30 s
def test_worker_processes_train_batches_of_trials_the_driver_asks_and_tells(store_path):
    text = PLAN.format(trials=4, prune="none").replace("seeds = [0, 1]", "seeds = [0]")
    text = text.replace("epochs = 3", "epochs = 1")
    plan = parse_plan(text.split('[[axes.optimizer]]\nname = "adam"')[0], source="tuned.toml")
    with Store(store_path) as store:
        report = run_plan(plan, store, workers=2)
        assert report.trained == 4 and len(store.list_runs()) == 4
        storage = optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(journal_path(store)))
        )
        study = optuna.load_study(study_name="tuned.sgd", storage=storage)
        assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
        pruning = parse_plan(text.replace('prune = "none"', 'prune = "median"'), source="t.toml")
        with pytest.raises(ConfigError, match="come back whole"):
            run_plan(pruning, store, workers=2)
