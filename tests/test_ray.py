"""Sweeps on a Ray cluster: a head and a worker on 127.0.0.1 inside a network namespace of their
own (`unshare -n`, so Ray's listeners are reachable from nowhere else), stopped by pid."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

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


def test_a_sweep_runs_as_ray_tasks_on_loopback(tmp_path):
    assert shutil.which("unshare") and shutil.which("ip"), "needs util-linux unshare and iproute2"
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    store = tmp_path / "runs.db"
    script = tmp_path / "cluster.sh"
    bin_dir = Path(sys.executable).parent
    script.write_text(
        SCRIPT.format(
            bin=bin_dir, python=sys.executable, port=6391, logs=tmp_path, plan=plan, store=store
        )
    )
    done = subprocess.run(
        ["unshare", "-n", "bash", str(script)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "4 trained" in done.stdout
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
