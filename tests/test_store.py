"""The SQLite store: round-trips, summaries, crash safety and bad store files."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costhill import RunConfig, train
from costhill.errors import StoreError
from costhill.records import EpochRecord, Run
from costhill.store import SCHEMA_VERSION, Store, load_run

finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


def _config_strategy():
    return st.builds(
        RunConfig,
        dataset=st.sampled_from(["fashion-mnist", "mnist", "fashion-mnist-sample"]),
        validation=st.one_of(st.none(), st.integers(0, 10_000)),
        hidden=st.lists(st.integers(1, 512), max_size=4).map(tuple),
        init=st.sampled_from(["glorot_uniform", "normal:stddev=1", "zeros"]),
        optimizer=st.sampled_from(["sgd", "adam", "lion"]),
        lr=st.floats(1e-6, 10.0),
        opt=st.dictionaries(st.sampled_from(["b1", "b2", "eps"]), st.floats(0, 1), max_size=2).map(
            lambda d: tuple(sorted(d.items()))
        ),
        batch_size=st.one_of(st.just("full"), st.integers(1, 60_000)),
        epochs=st.integers(1, 200),
        seed=st.integers(0, 2**31 - 1),
        target_accuracy=st.one_of(st.none(), st.floats(0.01, 1.0)),
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    config=_config_strategy(),
    costs=st.lists(st.lists(finite, min_size=1, max_size=50), min_size=1, max_size=4),
    accuracy=st.floats(0, 1),
)
def test_round_trip(tmp_path_factory, config, costs, accuracy):
    path = tmp_path_factory.mktemp("store") / "runs.db"
    run = Run(
        config=config,
        status="running",
        regime="mini-batch",
        batch_size=64,
        num_train=50_000,
        steps_per_epoch=782,
        versions={"jax": "x"},
        data={"train": 1},
    )
    params = {
        "dense_0/kernel": np.arange(6, dtype=np.float32).reshape(2, 3),
        "dense_0/bias": np.zeros(3, np.float32),
    }
    with Store(path) as store:
        store.begin(run)
        steps = 0
        for i, epoch_costs in enumerate(costs, start=1):
            steps += len(epoch_costs)
            record = EpochRecord(i, steps, 0.5, 0.4, accuracy, None, None, 0.6, accuracy, 1.5, 0.1)
            array = np.asarray(epoch_costs, np.float32)
            run.epochs.append(record)
            run.step_costs.append(array)
            store.add_epoch(run, record, array)
        run.status, run.params = "finished", params
        store.finish(run)
    assert run.run_id is not None
    loaded = load_run(run.run_id, store=path)
    assert loaded.config == config
    assert loaded.config.config_hash() == config.config_hash()
    assert loaded.status == "finished"
    assert [e.epoch for e in loaded.epochs] == list(range(1, len(costs) + 1))
    assert loaded.epochs[0].test_accuracy == pytest.approx(accuracy)
    for got, want in zip(loaded.step_costs, costs, strict=True):
        assert got.tolist() == np.asarray(want, np.float32).tolist()
    assert loaded.params is not None
    assert set(loaded.params) == set(params)
    assert all(np.array_equal(loaded.params[k], v) for k, v in params.items())
    assert loaded.versions == {"jax": "x"}


def test_a_trained_run_keeps_config_seed_versions_and_summary(sample, store_path):
    cfg = RunConfig(
        dataset="fashion-mnist-sample", validation=300, epochs=2, batch_size=100, seed=11
    )
    run = train(cfg, data=sample)
    with Store(store_path) as store:
        run_id = store.save(run)
        row = store.list_runs()[0]
    assert row["run_id"] == run_id and row["seed"] == 11 and row["status"] == "finished"
    assert row["config"] == cfg.to_dict()
    assert {"costhill", "jax", "optax", "python"} <= set(row["versions"])
    assert row["test_accuracy"] == pytest.approx(run.epochs[-1].test_accuracy)
    assert row["steps"] == run.steps
    loaded = load_run(run_id, store=store_path)
    assert np.array_equal(loaded.all_step_costs(), run.all_step_costs())


def test_diverged_runs_are_stored_as_diverged(sample, store_path):
    cfg = RunConfig(
        dataset="fashion-mnist-sample",
        validation=300,
        init="normal:stddev=10",
        optimizer="sgd",
        lr=1e4,
        epochs=3,
        batch_size=50,
    )
    run = train(cfg, data=sample)
    with Store(store_path) as store:
        run_id = store.save(run)
    loaded = load_run(run_id, store=store_path)
    assert loaded.status == "diverged"
    assert loaded.diverged_step == run.diverged_step
    assert not np.isfinite(loaded.all_step_costs()[-1])


def _running(seed: int = 0) -> Run:
    """A run just started, with nothing trained yet."""
    return Run(
        config=RunConfig(seed=seed),
        status="running",
        regime="mini-batch",
        batch_size=64,
        num_train=10,
        steps_per_epoch=1,
    )


def test_runs_are_listed_by_sweep_every_run_of_its_configs(store_path):
    with Store(store_path) as store:
        ids = [store.save(dataclasses.replace(_running(seed), status=status)) for seed, status in
               [(0, "finished"), (1, "pruned"), (2, "finished"), (0, "finished")]]  # fmt: skip
        hashes = [RunConfig(seed=seed).config_hash() for seed in (0, 1, 2)]
        store.add_to_sweep("a", hashes[:2])
        store.add_to_sweep("b", hashes[2:])
        assert [r["run_id"] for r in store.list_runs(sweep="a")] == [ids[0], ids[1], ids[3]]
        assert [r["run_id"] for r in store.list_runs(sweep="a", status="pruned")] == [ids[1]]
        assert [r["run_id"] for r in store.list_runs(sweep="b", limit=1)] == [ids[2]]
        with pytest.raises(StoreError, match=r"^sweep 'c': not in .* \(sweeps: a, b\)$"):
            store.list_runs(sweep="c")


def test_epochs_survive_a_crash(store_path):
    """A run whose process dies mid-way keeps every epoch it committed."""
    run = _running()
    store = Store(store_path)
    store.begin(run)
    record = EpochRecord(1, 1, 1.0, 1.0, 0.5, None, None, 1.0, 0.5, 0.1, 0.1)
    run.epochs.append(record)
    run.step_costs.append(np.ones(1, np.float32))
    store.add_epoch(run, record, np.ones(1, np.float32))
    store.db.close()  # no finish: the process "died"
    assert run.run_id is not None
    with Store(store_path) as reopened:
        loaded = reopened.load(run.run_id)
        integrity = reopened.db.execute("PRAGMA integrity_check").fetchone()[0]
    assert loaded.status == "running" and len(loaded.epochs) == 1
    assert integrity == "ok"


_KILLED_BETWEEN_TWO_FINISHES = """
import os, sys
import numpy as np
from costhill import RunConfig
from costhill.records import Run
from costhill.store import Store

store = Store(sys.argv[1])
runs = [
    Run(config=RunConfig(seed=seed), status="running", regime="mini-batch", batch_size=64,
        num_train=10, steps_per_epoch=1)
    for seed in (0, 1)
]
for run in runs:
    store.begin(run)
with store.together():
    runs[0].status = "finished"
    runs[0].params = {"w": np.ones(3, np.float32)}
    store.finish(runs[0])
    os._exit(9)  # as SIGKILL would: nothing after this line, no rollback, no close
"""


def test_a_process_killed_between_a_cohorts_finishes_leaves_neither_finished(store_path):
    """A cohort's arms end in one transaction: a kill half-way through leaves them all as they
    were, so the rerun trains them together again (not the second alone, in another program)."""
    import subprocess
    import sys

    died = subprocess.run([sys.executable, "-c", _KILLED_BETWEEN_TWO_FINISHES, str(store_path)])
    assert died.returncode == 9
    with Store(store_path) as store:
        # Both as a killed run is shown (its process is gone), neither finished.
        assert [r["status"] for r in store.list_runs()] == ["interrupted", "interrupted"]
        assert store.db.execute("SELECT COUNT(*) FROM params").fetchone()[0] == 0
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_writes_together_are_undone_together_when_one_fails(store_path):
    runs = [_running(seed) for seed in (0, 1)]
    with Store(store_path) as store:
        for run in runs:
            store.begin(run)
        runs[0].status = "finished"
        with pytest.raises(TypeError), store.together():
            store.finish(runs[0])
            store.finish(runs[1])
            raise TypeError("the second arm's end failed")
        assert [r["status"] for r in store.list_runs()] == ["running", "running"]
        store.finish(runs[0])  # and the store takes the next change as its own transaction
        assert sorted(r["status"] for r in store.list_runs()) == ["finished", "running"]


def test_store_is_in_wal_mode(store_path):
    with Store(store_path) as store:
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_new_store_opens_while_another_connection_is_writing_it(store_path):
    """Two sweeps that start together on a new store: the second finds the first creating the
    tables, and SQLite refuses the switch to WAL at once instead of waiting (CI saw it fail)."""
    writer = sqlite3.connect(store_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    outcome: list[object] = []

    def open_store() -> None:
        try:
            with Store(store_path) as store:
                outcome.append(store.db.execute("PRAGMA journal_mode").fetchone()[0])
        except StoreError as error:
            outcome.append(error)

    opener = threading.Thread(target=open_store)
    opener.start()
    time.sleep(0.3)
    writer.execute("COMMIT")
    writer.close()
    opener.join(timeout=30)
    assert outcome == ["wal"]


def test_not_a_store_is_refused_and_left_alone(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot be opened as a store"):
        Store(junk)
    assert junk.read_bytes() == b"this is not sqlite" * 100
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(StoreError, match="not a costhill store"):
        Store(other)


def test_an_empty_file_read_as_a_store_is_named_empty_and_left_empty(tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(StoreError, match=r"empty\.db: an empty file, with no costhill tables"):
        Store(empty, read_only=True)
    assert empty.read_bytes() == b""


def test_missing_run_and_missing_store_are_named(store_path):
    with pytest.raises(StoreError, match="no such store"):
        load_run(1, store=store_path)
    Store(store_path).close()
    with pytest.raises(StoreError, match="run 7: not in"):
        load_run(7, store=store_path)


def test_many_processes_opening_one_new_store_at_once_make_its_tables_once(store_path):
    """The schema alters tables (version 3 adds columns), so making it twice would fail: the
    check that the store is new and the making are one transaction (CI saw two sweeps race)."""
    barrier = threading.Barrier(6)
    outcome: list[object] = []

    def open_store() -> None:
        barrier.wait()
        try:
            with Store(store_path) as store:
                outcome.append(store.db.execute("SELECT value FROM meta").fetchone()[0])
        except StoreError as error:
            outcome.append(error)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcome == [str(SCHEMA_VERSION)] * 6
