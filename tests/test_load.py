"""A sweep of 2,000 short runs (issue 15, item 10): every run stored once, the store whole, and
compare answers over all of them. Slow (about a minute): .ci/run runs it after the default suite.
Its timings are a benchmark's (python -m bench.load; BENCHMARKS.md, "Load")."""

from __future__ import annotations

import sqlite3

import pytest
from bench.load import LOAD_PLAN, RUNS  # the same sweep the benchmark times

from costhill.results.compare import compare
from costhill.store import Store
from costhill.sweeps import parse_plan, run_plan


@pytest.mark.slow
def test_a_sweep_of_2000_short_runs_stores_each_once(store_path):
    plan = parse_plan(LOAD_PLAN, source="load.toml")
    assert len(plan) == RUNS
    with Store(store_path) as store:
        report = run_plan(plan, store)
        assert report.trained == RUNS and report.diverged == 0
        again = run_plan(plan, store)  # a rerun finds every config done
        assert again.trained == 0 and again.skipped == RUNS
        runs = store.list_runs()
        result = compare(store, "load", by="optimizer")
    assert len(runs) == RUNS and {r["status"] for r in runs} == {"finished"}
    assert len({r["config_hash"] for r in runs}) == RUNS
    assert result.rows[0].best_val.n == RUNS  # one arm, every seed in it
    with sqlite3.connect(store_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
