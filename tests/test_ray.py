"""Sweeps on a Ray cluster: a head and a worker on 127.0.0.1 inside a network namespace of their
own (`unshare -n`, so Ray's listeners are reachable from nowhere else), stopped by pid."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

PLAN = """\
name = "on-ray"
dataset = "fashion-mnist-sample"
validation = 300
batch_size = 100
epochs = 1
seeds = [0, 1]
[axes]
init = ["glorot_uniform", "he_normal"]
"""

SCRIPT = """\
set -eu
ip link set lo up
export RAY_USAGE_STATS_ENABLED=0 JAX_PLATFORMS=cpu
RAY="{bin}/ray"
"$RAY" start --head --node-ip-address=127.0.0.1 --port={port} --num-cpus=1 \\
    --include-dashboard=false --block > "{logs}/head.log" 2>&1 &
HEAD=$!
WORKER=""
stop() {{ kill $WORKER $HEAD 2>/dev/null || true; wait $WORKER $HEAD 2>/dev/null || true; }}
trap stop EXIT
for i in $(seq 60); do
    "{python}" -c "import socket; socket.create_connection(('127.0.0.1', {port}), 1)" \\
        2>/dev/null && break
    sleep 0.5
done
"$RAY" start --address=127.0.0.1:{port} --node-ip-address=127.0.0.1 --num-cpus=1 \\
    --block > "{logs}/worker.log" 2>&1 &
WORKER=$!
"{python}" -m costhill sweep "{plan}" --ray 127.0.0.1:{port} --store "{store}"
"""


# ASHA over two trials at a time on two Ray workers: the study is made beforehand with one good
# trial (lr 0.3) queued first and hopeless ones after it (see ``_sweep_on_ray``).
TUNED_PLAN = """\
name = "tuned-on-ray"
dataset = "fashion-mnist-sample"
validation = 300
model = "logreg"
batch_size = 100
epochs = 3
seeds = [0, 1]
trials = 4

[search]
sampler = "tpe"
batch = 2

[prune]
rule = "asha"
reduction = 2

[[axes.optimizer]]
name = "sgd"
lr = {log = [1e-6, 1e0]}
"""


def _sweep_on_ray(tmp_path: Path, plan_text: str, store: Path, port: int) -> str:
    """Run ``costhill sweep`` of ``plan_text`` on a two-node Ray cluster on loopback; its stdout."""
    assert shutil.which("unshare") and shutil.which("ip"), "needs util-linux unshare and iproute2"
    plan = tmp_path / "plan.toml"
    plan.write_text(plan_text)
    script = tmp_path / "cluster.sh"
    bin_dir = Path(sys.executable).parent
    script.write_text(
        SCRIPT.format(
            bin=bin_dir, python=sys.executable, port=port, logs=tmp_path, plan=plan, store=store
        )
    )
    done = subprocess.run(
        ["unshare", "-n", "bash", str(script)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_a_sweep_runs_as_ray_tasks_on_loopback(tmp_path):
    store = tmp_path / "runs.db"
    assert "4 trained" in _sweep_on_ray(tmp_path, PLAN, store, port=6391)
    db = sqlite3.connect(store)
    rows = db.execute(
        "SELECT status, COUNT(DISTINCT config_hash), COUNT(*) FROM runs GROUP BY status"
    ).fetchall()
    assert rows == [("finished", 4, 4)]
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_no_ray_head_is_a_clear_error_within_seconds(invoke, tmp_path, store_path):
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    started = time.monotonic()
    result = invoke("sweep", plan, "--ray", "127.0.0.1:9", "--store", store_path)
    assert result.exit_code == 2
    assert "--ray 127.0.0.1:9: no Ray head reachable" in result.stderr
    assert time.monotonic() - started < 30  # Ray's own connect would wait for minutes
    assert not store_path.exists()


@pytest.mark.slow  # a Ray cluster and a tuning sweep: about a minute
def test_ray_tasks_train_trials_the_driver_prunes(tmp_path):
    """The first two trials (lr 0.3, 1e-5) start together; by the time the third (2e-5) reaches
    epoch 1 the good one has reported there, so ASHA stops the third at epoch 1."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    store = tmp_path / "runs.db"
    storage = optuna.storages.JournalStorage(JournalFileBackend(f"{store}.optuna.journal"))
    study = optuna.create_study(
        study_name="tuned-on-ray.sgd", storage=storage, direction="maximize"
    )
    for lr in (0.3, 1e-5, 2e-5, 3e-5):
        study.enqueue_trial({"optimizer": "sgd", "sgd.lr": lr})
    out = _sweep_on_ray(tmp_path, TUNED_PLAN, store, port=6392)
    assert "8 trained" in out, out
    trials = optuna.load_study(study_name="tuned-on-ray.sgd", storage=storage).trials
    assert [t.params["sgd.lr"] for t in trials] == [0.3, 1e-5, 2e-5, 3e-5]
    assert trials[0].state.name == "COMPLETE" and trials[2].state.name == "PRUNED"
    assert trials[2].intermediate_values.keys() == {1}
    db = sqlite3.connect(store)
    for trial in trials:
        hashes = trial.user_attrs["config_hashes"]
        rows = db.execute(
            f"SELECT status, epochs FROM runs WHERE config_hash IN ({','.join('?' * len(hashes))})",
            hashes,
        ).fetchall()
        if trial.state.name == "PRUNED":
            assert set(rows) == {("pruned", max(trial.intermediate_values))}
        else:
            assert set(rows) == {("finished", 3)}
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
