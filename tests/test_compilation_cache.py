"""`costhill train`'s compilation cache on disk: where it is kept, and that a second process
training the same shapes compiles nothing and gets the same numbers."""

from __future__ import annotations

import doctest
import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from costhill.engine import compilation_cache
from costhill.engine.compilation_cache import compilation_cache_dir
from costhill.engine.cpu_tuning import default_xla_threads
from costhill.store import load_run

JAX = f"jax-{version('jax')}"
DEFAULT = f"threads-{default_xla_threads()}"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"XDG_CACHE_HOME": "/x"}, f"/x/costhill/xla/{JAX}/{DEFAULT}"),
        ({"XDG_CACHE_HOME": "/x", "PJRT_NPROC": "1"}, f"/x/costhill/xla/{JAX}/threads-1"),
        ({"COSTHILL_COMPILATION_CACHE": "/c", "NPROC": "3"}, f"/c/{JAX}/threads-3"),
        (
            {"COSTHILL_COMPILATION_CACHE": "/c", "PJRT_NPROC": "2", "NPROC": "3"},
            f"/c/{JAX}/threads-2",
        ),
        ({"COSTHILL_COMPILATION_CACHE": "off"}, None),
        ({"COSTHILL_COMPILATION_CACHE": "0"}, None),
        ({"COSTHILL_COMPILATION_CACHE": "OFF", "XDG_CACHE_HOME": "/x"}, None),
        ({"JAX_COMPILATION_CACHE_DIR": "/mine", "XDG_CACHE_HOME": "/x"}, None),
    ],
)
def test_the_cache_folder_follows_the_environment(environ, expected):
    found = compilation_cache_dir(environ)
    assert (None if found is None else str(found)) == expected


def test_the_home_cache_is_the_default(monkeypatch, tmp_path):
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    assert compilation_cache_dir({}) == tmp_path / ".cache" / "costhill" / "xla" / JAX / DEFAULT


def test_the_module_example_runs():
    assert doctest.testmod(compilation_cache).failed == 0


def _train(store: Path, cache: Path, stderr: list[str] | None = None) -> tuple[dict, list[str]]:
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["COSTHILL_COMPILATION_CACHE"] = str(cache)
    args = ["train", "--dataset", "fashion-mnist-sample", "--epochs", "2", "--json"]
    args += [] if stderr is not None else ["--quiet"]  # --quiet would hide what the test reads
    done = subprocess.run(
        [sys.executable, "-m", "costhill", *args, "--store", str(store)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    if stderr is not None:
        stderr.append(done.stderr)
    run = load_run(json.loads(done.stdout)["run_id"], store)
    numbers = {
        "costs": [e.train_cost for e in run.epochs],
        "test_accuracy": run.epochs[-1].test_accuracy,
    }
    return numbers, sorted(p.name for p in cache.rglob("*") if p.is_file())


@pytest.mark.slow  # two processes: about 15 s
def test_a_second_process_compiles_nothing_and_gets_the_same_numbers(tmp_path):
    cache = tmp_path / "cache"
    first, after_first = _train(tmp_path / "a.db", cache)
    assert any("epoch" in name for name in after_first), after_first
    second, after_second = _train(tmp_path / "b.db", cache)
    assert after_second == after_first  # every compilation of the second run was loaded
    assert second == first


@pytest.mark.slow  # three fresh processes, each compiling: about 40 s
def test_a_damaged_cache_is_compiled_over_not_trusted(tmp_path):
    cache = tmp_path / "cache"
    first, entries = _train(tmp_path / "a.db", cache)
    for name in entries:  # as a crash mid-write, or another process writing, would leave them
        path = next(cache.rglob(name))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    said: list[str] = []
    second, rewritten = _train(tmp_path / "b.db", cache, said)
    assert second == first
    # One line says what happened, instead of a warning for each entry; the entries went.
    assert "Warning" not in said[0]
    assert "unreadable entries" in said[0] and "were compiled again and removed" in said[0]
    assert not rewritten
    # The next run fills the cache anew, and the one after that finds all of it.
    third, refilled = _train(tmp_path / "c.db", cache)
    fourth, unchanged = _train(tmp_path / "d.db", cache)
    assert third == fourth == first
    assert refilled == unchanged == entries
