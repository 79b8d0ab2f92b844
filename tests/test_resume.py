"""Resuming a run where it stopped: the engine continues from a kept state with the numbers of a
run never interrupted; the store keeps that state (overwritten each epoch); `costhill train
--resume` continues a run killed with SIGKILL; a sweep continues its interrupted run."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from costhill import RunConfig, train
from costhill.errors import StoreError
from costhill.store import Store
from costhill.sweeps import parse_plan, run_plan

BASE: dict[str, Any] = dict(dataset="fashion-mnist-sample", validation=300, batch_size=100)


class _Stop(Exception):
    pass


def _interrupted(config: RunConfig, data, *, after: int):
    """The run as it stood when something stopped it after epoch ``after``."""
    seen = []

    def stop(run, record, costs):
        seen.append(run)
        if record.epoch == after:
            raise _Stop

    with pytest.raises(_Stop):
        train(config, data=data, keep_state=True, on_epoch=stop)
    run = seen[0]
    run.status = "interrupted"
    return run


def _same(a, b) -> bool:
    return np.array_equal(a.all_step_costs(), b.all_step_costs()) and all(
        np.array_equal(a.params[k], b.params[k]) for k in a.params
    )


@pytest.mark.parametrize(
    "settings",
    [
        {"optimizer": "adam"},
        {"optimizer": "momentum", "lr": 0.05, "schedule": "cosine"},
        {"optimizer": "noisy_sgd", "lr": 0.05},  # its state holds a PRNG key
        {"optimizer": "sgd", "lr": 0.1, "snapshots": 8},
    ],
)
def test_a_resumed_run_ends_with_the_numbers_of_one_never_interrupted(sample, settings):
    config = RunConfig(**BASE, epochs=4, **settings)
    whole = train(config, data=sample)
    resumed = train(config, data=sample, resume=_interrupted(config, sample, after=2))
    assert resumed.status == "finished" and len(resumed.epochs) == 4
    assert _same(resumed, whole)
    assert [s.step for s in resumed.snapshots] == [s.step for s in whole.snapshots]


@pytest.mark.parametrize(
    "settings",
    [{"epochs": 3}, {"epochs": 10, "target_accuracy": 0.5, "stop_at_target": True}],
    ids=["all-epochs", "at-target"],
)
def test_a_run_stopped_after_its_last_epoch_resumes_to_its_end_without_training(sample, settings):
    """Killed after its last epoch (its last, or the one it reached its target in) was stored
    and before its end was: it has nothing left to train, and ends with the parameters kept."""
    config = RunConfig(**BASE, optimizer="adam", lr=3e-3, **settings)
    whole = train(config, data=sample)
    assert len(whole.epochs) < 10 or "target_accuracy" not in settings
    stopped = _interrupted(config, sample, after=len(whole.epochs))
    resumed = train(config, data=sample, resume=stopped)
    assert resumed.status == "finished" and len(resumed.epochs) == len(whole.epochs)
    assert resumed.params is not None and _same(resumed, whole)


def test_a_run_kept_with_its_hyperparameters_compiled_in_resumes_in_that_layout(sample):
    """Runs stored before the engine carried hyperparameters in the optimizer state kept a state
    without them, and record nothing of it: they resume as they were trained."""
    from costhill.engine import loop

    config = RunConfig(**BASE, epochs=3, optimizer="adam", lr=0.003)

    def compiled_in(on_epoch=None):
        arms = loop._Arms([config], vectorize=False, keep_state=True, injected=False)
        return loop._train(arms, sample, None, None, on_epoch, None)[0]

    whole = compiled_in()
    seen = []

    def stop(run, record, costs):
        seen.append(run)
        if record.epoch == 1:
            raise _Stop

    with pytest.raises(_Stop):
        compiled_in(stop)
    old = seen[0]
    old.status = "interrupted"
    del old.versions["hyperparameters"]
    resumed = train(config, data=sample, resume=old)
    assert resumed.versions["hyperparameters"] == "compiled in"
    assert _same(resumed, whole)
    injected = _interrupted(config, sample, after=1)
    assert injected.versions["hyperparameters"] == "in the optimizer state"
    assert len(injected.state.optimizer_leaves) > len(old.state.optimizer_leaves)


def test_the_store_keeps_one_state_a_run_and_drops_it_when_the_run_ends(sample, store_path):
    config = RunConfig(**BASE, epochs=3, optimizer="adam")
    with Store(store_path) as store:
        kept = _interrupted(config, sample, after=2)
        run_id = store.save_partial(kept)
        state = store.load_state(run_id)
        assert state is not None and state.epoch == 2
        assert kept.state is not None
        for a, b in zip(state.optimizer_leaves, kept.state.optimizer_leaves, strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)
        rows = store.db.execute("SELECT COUNT(*) FROM training_state").fetchone()[0]
        assert rows == 1
        resumed = train(config, data=sample, resume=store.resumable(run_id))
        store.finish(resumed)
        assert store.load_state(run_id) is None
        with pytest.raises(StoreError, match="is finished; there is nothing to resume"):
            store.resumable(run_id)


def test_a_damaged_state_is_named(sample, store_path):
    config = RunConfig(**BASE, epochs=2, optimizer="adam")
    with Store(store_path) as store:
        run_id = store.save_partial(_interrupted(config, sample, after=1))
        store.db.execute("UPDATE training_state SET optimizer = x'00'")
        with pytest.raises(StoreError, match="kept training state is damaged"):
            store.load_state(run_id)


def test_a_sweep_continues_its_interrupted_run(sample, store_path, tmp_path):
    plan = parse_plan(
        'name = "go-on"\ndataset = "fashion-mnist-sample"\nvalidation = 300\nepochs = 3\n'
        "seeds = [0]\nbatch_size = 100\n",
        source="go-on.toml",
    )

    def stop_after_two(run, record, costs):
        if record.epoch == 2:
            raise KeyboardInterrupt

    with Store(store_path) as store:
        with pytest.raises(KeyboardInterrupt):
            run_plan(plan, store, on_epoch=stop_after_two)
        assert [r["status"] for r in store.list_runs()] == ["interrupted"]
        report = run_plan(plan, store)
        runs = store.list_runs()
        assert report.trained == 1 and [(r["run_id"], r["status"]) for r in runs] == [
            (1, "finished")
        ]
        continued = store.load(1)
    with Store(tmp_path / "whole.db") as other:
        run_plan(plan, other)
        assert _same(continued, other.load(1))


def test_resume_refuses_settings_and_runs_without_state(invoke, store_path, sample):
    config = RunConfig(**BASE, epochs=2)
    with Store(store_path) as store:
        run = train(config, data=sample)
        run.status = "interrupted"
        store.save_partial(run)
    bad = invoke("train", "--resume", "1", "--lr", "0.1", "--store", store_path)
    assert bad.exit_code == 2 and "give no settings" in bad.stderr
    none = invoke("train", "--resume", "1", "--store", store_path)
    assert none.exit_code == 2 and "kept no training state" in none.stderr


def test_a_run_left_running_by_a_dead_process_shows_as_interrupted(sample, store_path):
    config = RunConfig(**BASE, epochs=2, optimizer="adam")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid now names no process
    with Store(store_path) as store:
        run = _interrupted(config, sample, after=1)
        run.status = "running"
        run_id = store.save_partial(run)
        assert store.list_runs()[0]["status"] == "running"  # this process: alive
        store.db.execute("UPDATE runs SET pid = ? WHERE id = ?", (dead.pid, run_id))
        assert [r["status"] for r in store.list_runs()] == ["interrupted"]
        assert store.list_runs(status="interrupted") and not store.list_runs(status="running")
        assert store.load(run_id, with_params=False).status == "interrupted"
        store.db.execute(
            "UPDATE runs SET host = 'elsewhere', heartbeat = 0 WHERE id = ?", (run_id,)
        )
        assert store.list_runs()[0]["status"] == "interrupted"  # a heartbeat long stopped
        assert store.interrupted_run(config.config_hash()) == run_id
        resumed = train(config, data=sample, resume=store.resumable(run_id))
    assert resumed.status == "finished"
