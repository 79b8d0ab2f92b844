"""Resources: work that would not fit in memory is refused before anything is allocated or stored,
with the estimate and how to shrink it; a full disk or a read-only store folder is one clear line
and leaves the store as it was."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from costhill import RunConfig, train
from costhill.engine import memory
from costhill.errors import ResourceError
from costhill.models import logreg, mlp
from costhill.optimizers import make_optimizer
from costhill.store import Store
from costhill.sweeps import parse_plan, run_plan

HUGE = (100_000_000,)  # 78 billion parameters: more than any machine this runs on holds


def test_the_estimate_matches_a_hand_count():
    model = logreg()
    assert (model.num_params, model.activation_floats) == (784 * 10 + 10, 784 + 10)
    found = memory.estimate(model, batch=100, examples=2_000, arms=3, optimizer_floats=7_851)
    assert found.data == 2_000 * 784 * 4
    assert found.parameters == 3 * (2 * 7_850 + 7_851) * 4
    # the evaluation's chunk (1,000 examples) is larger than the batch: it sets the peak
    assert found.activations == 3 * 1_000 * 794 * 2 * 4
    assert found.total == found.data + found.parameters + found.activations


@pytest.mark.parametrize(("name", "per_parameter"), [("sgd", 0), ("momentum", 1), ("adam", 2)])
def test_the_optimizer_state_is_counted_from_its_shapes(name, per_parameter):
    model = mlp((20,))
    floats = memory._optimizer_floats(model, make_optimizer(name, 0.1))
    assert floats is not None
    assert per_parameter * model.num_params <= floats <= per_parameter * model.num_params + 2


def test_a_full_batch_run_too_big_for_memory_is_refused_before_it_starts(sample):
    config = RunConfig(
        dataset="fashion-mnist-sample", validation=300, batch_size="full", hidden=HUGE, epochs=1
    )
    started: list = []
    with pytest.raises(ResourceError) as refused:
        train(config, data=sample, on_start=started.append)
    message = str(refused.value)
    assert message.startswith("batch_size full: the run would need about ")
    assert "GiB is available. To fit: " in message and "; hidden narrower" in message
    assert not started


def test_the_comparison_uses_the_available_memory(sample, monkeypatch):
    config = RunConfig(dataset="fashion-mnist-sample", validation=300, epochs=1, batch_size=50)
    assert train(config, data=sample).status == "finished"
    monkeypatch.setattr(memory, "available_bytes", lambda: 2**20)
    with pytest.raises(ResourceError, match=r"but 0\.0 GiB is available"):
        train(config, data=sample)


def test_a_sweep_refuses_before_it_trains_any_run(sample, store_path):
    plan = parse_plan(
        'name = "too-big"\ndataset = "fashion-mnist-sample"\nvalidation = 300\nepochs = 1\n'
        f"batch_size = 100\nseeds = [0]\n[axes]\nhidden = [[8], [{HUGE[0]}]]\n",
        source="too-big.toml",
    )
    with Store(store_path) as store:
        with pytest.raises(ResourceError, match="batch_size 100: the run would need"):
            run_plan(plan, store)
        assert store.list_runs() == []


def test_the_cli_names_the_flag_and_stores_nothing(invoke, store_path):
    result = invoke(
        "train", "--dataset", "fashion-mnist-sample", "--batch-size", "full",
        "--hidden", ",".join(map(str, HUGE)), "--epochs", "1", "--store", store_path,
    )  # fmt: skip
    assert result.exit_code == 2
    error = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "Traceback" not in result.stderr
    assert error[0].startswith("Error: --batch-size full: the run would need about ")
    assert error[0].endswith("To fit: --batch-size smaller (now full); --hidden narrower; "
                             "--validation smaller")  # fmt: skip
    with sqlite3.connect(store_path) as db:
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0


# -- disks ----------------------------------------------------------------------------------

UNSHARE = shutil.which("unshare")


def _in_small_filesystem(script: str, folder: Path, *, size: str, read_only: bool) -> str:
    """Run ``script`` (Python) with ``folder`` a fresh tmpfs of ``size``, made read-only after
    the set-up lines above ``# --- go`` ran, in a mount namespace of its own (nothing outside
    sees the mount); returns its stderr."""
    set_up, go = script.split("# --- go\n")
    remount = f"mount -o remount,ro {folder}\n" if read_only else ""
    shell = (
        f"set -e\nmount -t tmpfs -o size={size} tmpfs {folder}\n"
        f'"{sys.executable}" -c "$SET_UP"\n{remount}'
        f'"{sys.executable}" -c "$GO"\n'
    )
    result = subprocess.run(
        [str(UNSHARE), "-m", "sh", "-c", shell],
        capture_output=True,
        text=True,
        timeout=600,
        env={"SET_UP": set_up, "GO": go, "JAX_PLATFORMS": "cpu", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _can_mount(tmp_path: Path) -> bool:
    if UNSHARE is None:
        return False
    probe = subprocess.run(
        [UNSHARE, "-m", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {tmp_path}"],
        capture_output=True,
    )
    return probe.returncode == 0


# The store holds one finished run, then the filesystem fills up (or turns read-only) and a second
# run is trained into it: the error is one line, and the first run reads back whole.
_DISK_SCRIPT = """
import sys
from click.testing import CliRunner
from costhill.cli import cli
store = "{folder}/runs.db"
args = ["train", "--dataset", "fashion-mnist-sample", "--epochs", "2", "--store", store, "--quiet"]
first = CliRunner().invoke(cli, args)
assert first.exit_code == 0, first.output
{fill}
# --- go
import sqlite3, sys
from click.testing import CliRunner
from costhill.cli import cli
from costhill.store import Store
store = "{folder}/runs.db"
args = ["train", "--dataset", "fashion-mnist-sample", "--epochs", "2", "--store", store, "--quiet"]
second = CliRunner().invoke(cli, args + ["--snapshots", "20"])
print(second.exit_code)
print(second.stderr.strip() or repr(second.exception))
# The mount goes with this namespace: what the store holds is read from a copy outside it.
with sqlite3.connect(f"file:{{store}}?immutable=1", uri=True) as db:
    db.backup(sqlite3.connect("{folder}.after.db"))
"""

_FILL = """
with open("{folder}/ballast", "wb") as ballast:
    try:
        while True:
            ballast.write(bytes(1 << 16))
            ballast.flush()
    except OSError:
        pass
import os
os.truncate("{folder}/ballast", os.path.getsize("{folder}/ballast") - (96 << 10))
"""


@pytest.mark.parametrize("fault", ["full disk", "read-only folder"])
def test_a_full_or_read_only_disk_is_one_line_and_the_store_is_kept(tmp_path, fault):
    folder = tmp_path / "small"
    folder.mkdir()
    if not _can_mount(folder):
        pytest.skip("needs unshare -m and mount (root, as in CI)")
    fill = _FILL.format(folder=folder) if fault == "full disk" else ""
    script = _DISK_SCRIPT.format(folder=folder, fill=fill)
    out = _in_small_filesystem(script, folder, size="8m", read_only=fault == "read-only folder")
    code, error = out.strip().splitlines()
    assert code == "2", out
    assert error.startswith("Error: --store ")
    if fault == "full disk":
        assert error.endswith("(database or disk is full); it holds what it held before")
    else:
        assert error.endswith(f"cannot be written: its folder {folder} is read-only")
    after = Path(f"{folder}.after.db")
    with sqlite3.connect(after) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Store(after, read_only=True) as kept:
        first = kept.load(1)
        assert (first.status, len(first.epochs)) == ("finished", 2)
