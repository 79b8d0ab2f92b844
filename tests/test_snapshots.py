"""Parameter snapshots along a run (the hill's paths), their storage, and the store's migration
to the schema that holds them."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from costhill import RunConfig, train
from costhill.engine.steps import snapshot_plan
from costhill.errors import StoreError
from costhill.store import SCHEMA_VERSION, SearchedRange, Store

FIXTURES = Path(__file__).parent / "data"
BASE: dict[str, Any] = dict(dataset="fashion-mnist-sample", validation=300, batch_size=100)


@pytest.mark.parametrize(
    "epochs,snapshots,expected",
    [(2, 6, 7), (3, 3, 4), (10, 4, 5), (1, 5, 6), (4, 6, 9)],  # K+1, or the next multiple + 1
)
def test_a_run_keeps_k_plus_one_snapshots_from_step_0(sample, epochs, snapshots, expected):
    run = train(RunConfig(**BASE, epochs=epochs, snapshots=snapshots), data=sample)
    steps = [s.step for s in run.snapshots]
    assert len(steps) == expected and steps[0] == 0 and steps == sorted(set(steps))
    assert steps[-1] == run.steps  # the last is the end point
    last = run.snapshots[-1]
    assert run.params is not None
    assert all(np.array_equal(last.params[k], run.params[k]) for k in run.params)
    assert last.train_cost == pytest.approx(run.epochs[-1].train_cost, rel=1e-6)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_snapshots_change_no_number_of_the_run_beyond_float_rounding(sample, optimizer):
    """The same steps, cut into segments. Plain SGD gives the very same numbers;
    an adaptive optimizer's update, with its learning rate a value of the optimizer state and
    fast math free to reorder it, may round its last bit otherwise in a loop cut otherwise."""
    lr = 0.05 if optimizer == "sgd" else 1e-3
    config = RunConfig(**BASE, epochs=2, optimizer=optimizer, lr=lr)
    plain = train(config, data=sample)
    kept = train(config.replace(snapshots=8), data=sample)
    assert plain.params is not None and kept.params is not None
    if optimizer == "sgd":
        assert np.array_equal(plain.all_step_costs(), kept.all_step_costs())
        assert all(np.array_equal(plain.params[k], kept.params[k]) for k in plain.params)
    np.testing.assert_allclose(plain.all_step_costs(), kept.all_step_costs(), rtol=1e-5)
    for k in plain.params:
        np.testing.assert_allclose(plain.params[k], kept.params[k], rtol=1e-4, atol=1e-6)
    assert kept.epochs[-1].test_accuracy == pytest.approx(plain.epochs[-1].test_accuracy, abs=2e-3)


def test_snapshot_steps_are_evenly_spaced():
    assert snapshot_plan(20, epochs=100, full_batches=782)[1] == list(range(5, 101, 5))
    segments, epochs = snapshot_plan(20, epochs=2, full_batches=782)
    assert segments == 10 and epochs == [1, 2]
    assert snapshot_plan(20, epochs=2, full_batches=1) == (1, [1, 2])  # full-batch: one a step
    assert snapshot_plan(0, epochs=5, full_batches=10) == (1, [])


def test_a_config_without_snapshots_keeps_its_hash():
    assert "snapshots" not in RunConfig().to_dict()
    assert RunConfig(snapshots=3).config_hash() != RunConfig().config_hash()
    assert RunConfig(snapshots=3).to_dict()["snapshots"] == 3


def test_snapshots_round_trip_through_the_store(sample, store_path):
    run = train(RunConfig(**BASE, epochs=2, snapshots=4), data=sample)
    with Store(store_path) as store:
        run_id = store.save(run)
        index = store.snapshot_index(run_id)
        loaded = store.load_snapshots(run_id)
    assert [r["step"] for r in index] == [s.step for s in run.snapshots]
    for kept, back in zip(run.snapshots, loaded, strict=True):
        assert back.step == kept.step and back.epoch == kept.epoch
        assert back.train_cost == pytest.approx(kept.train_cost)
        assert all(np.array_equal(back.params[k], kept.params[k]) for k in kept.params)


def test_a_damaged_snapshot_is_named(sample, store_path):
    run = train(RunConfig(**BASE, epochs=1, snapshots=1), data=sample)
    with Store(store_path) as store:
        run_id = store.save(run)
        store.db.execute("UPDATE snapshots SET data = x'0102' WHERE step = 0")
        with pytest.raises(StoreError, match="snapshot at step 0 is damaged"):
            store.load_snapshots(run_id)


def test_a_version_1_store_is_migrated_in_place_after_a_backup(tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(FIXTURES / "store-v1.db", path)
    with Store(path) as store:
        runs = store.list_runs()
        assert [r["run_id"] for r in runs] == [1, 2]
        assert store.load(1).epochs[-1].test_accuracy == pytest.approx(0.638, abs=1e-6)
        assert store.snapshot_index(1) == []
        assert store.sweep_pruning("any") is None  # version 4's table, empty
        store.set_sweep_pruning("any", "median", "val_cost")
        assert store.sweep_pruning("any") == ("median", "val_cost")
        assert store.sweep_ranges("any") == []  # version 5's table, empty
        store.set_sweep_ranges("any", [SearchedRange("adam", "lr", True, 1e-4, 1e-2)])
        store.set_sweep_ranges("any", [SearchedRange("", "lr", False, 0.1, 0.5)])  # replaced
        assert store.sweep_ranges("any") == [("", "lr", False, 0.1, 0.5)]
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    backup = tmp_path / "old.db.schema-v1.bak"
    with sqlite3.connect(backup) as kept:
        assert kept.execute("SELECT value FROM meta").fetchone()[0] == "1"
    with sqlite3.connect(path) as now:
        assert now.execute("SELECT value FROM meta").fetchone()[0] == str(SCHEMA_VERSION)


def test_a_store_from_a_newer_costhill_is_refused_naming_both_versions(store_path):
    Store(store_path).close()
    with sqlite3.connect(store_path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match=f"schema version 99 .* up to {SCHEMA_VERSION}"):
        Store(store_path)
