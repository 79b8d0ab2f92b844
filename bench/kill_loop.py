"""The kill loop: start `costhill sweep` (or `costhill train`), SIGKILL it at a random moment, check
the store, start it again, N times; then let it finish and compare it with a run never killed.

After every kill the store must pass `PRAGMA integrity_check`, keep every run that had finished,
hold no config twice, and show no config with fewer epochs than before. At the end it must hold
exactly the runs of the uninterrupted command, with identical step costs and final parameters.
The kill moments are drawn uniformly from (0, T / N), T being the uninterrupted command's wall
time, so that all N kills fall before the work is done. Both commands start with an empty
compilation cache of their own, as a user's first run does.

    python -m bench.kill_loop            # N = 20 kills of each command
    python -m bench.kill_loop --kills 3
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from costhill.records import Run

# Long enough that N = 20 restarts (each pays the interpreter, JAX and the data again, ~2.5 s)
# are a fair share of the work, short enough for CI: two to three minutes each, uninterrupted
# (the slow test sizes the epochs to the machine: `sized`).
SWEEP_PLAN = """
name = "kill-loop"
dataset = "fashion-mnist-sample"
validation = 300
model = "mlp"
hidden = [128]
batch_size = 8
epochs = {epochs}
seeds = {seeds}

[[axes.optimizer]]
name = "adam"
lr = 1e-3

[[axes.optimizer]]
name = "momentum"
lr = 0.02

[[axes.optimizer]]
name = "noisy_sgd"
lr = 0.05
"""
TRAIN_ARGS = (
    "--dataset fashion-mnist-sample --validation 300 --hidden 128 --batch-size 1 --optimizer adam "
    "--lr 1e-4 --epochs {epochs}"
)


@dataclass
class Seen:
    """What the store held after one kill: per config, its status and stored epochs."""

    rows: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    @property
    def finished(self) -> set[str]:
        return {h for h, runs in self.rows.items() if any(s == "finished" for s, _ in runs)}

    def epochs(self, config_hash: str) -> int:
        return max((n for _, n in self.rows.get(config_hash, [])), default=0)


@dataclass
class Outcome:
    kills: int
    killed_seconds: float  # every attempt, killed or not, end to end
    uninterrupted_seconds: float
    runs: int
    problems: list[str]

    @property
    def ratio(self) -> float:
        return self.killed_seconds / self.uninterrupted_seconds


def look(store: Path) -> tuple[str, Seen]:
    """The store's integrity check and what it holds (an absent or empty store holds nothing)."""
    if not store.exists():
        return "ok", Seen()
    with contextlib.closing(sqlite3.connect(store)) as db:
        check = db.execute("PRAGMA integrity_check").fetchone()[0]
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone():
            return check, Seen()
        seen = Seen()
        query = (
            "SELECT r.config_hash, r.status, (SELECT COUNT(*) FROM epochs e WHERE e.run_id = r.id)"
            " FROM runs r ORDER BY r.id"
        )
        for config_hash, status, epochs in db.execute(query):
            seen.rows.setdefault(config_hash, []).append((status, epochs))
    return check, seen


def compare(before: Seen, after: Seen, check: str) -> list[str]:
    """What is wrong with the store after a kill, given what it held after the one before."""
    problems = [] if check == "ok" else [f"integrity_check: {check}"]
    problems += [f"{h}: {len(r)} runs" for h, r in after.rows.items() if len(r) > 1]
    problems += [f"{h}: a finished run was lost" for h in before.finished - after.finished]
    problems += [
        f"{h}: went back from {before.epochs(h)} to {after.epochs(h)} epochs"
        for h in before.rows
        if after.epochs(h) < before.epochs(h)
    ]
    return problems


def _attempt(
    command: list[str], env: dict[str, str], kill_after: float | None
) -> tuple[bool, float]:
    """Run ``command``; SIGKILL it after ``kill_after`` seconds unless it ends first. Returns
    whether it was killed, and its wall time."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        _, err = process.communicate(timeout=kill_after)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()
        return True, time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {err}")
    return False, time.perf_counter() - started


def _environment(cache: Path) -> dict[str, str]:
    return {**os.environ, "JAX_PLATFORMS": "cpu", "COSTHILL_COMPILATION_CACHE": str(cache)}


def sized(
    make: Callable[[int], Callable[[Path], list[str] | None]],
    epochs: int,
    folder: Path,
    *,
    seconds: float,
    kills: int,
) -> tuple[Callable[[Path], list[str] | None], int, float]:
    """``make(n)``'s command for the ``n`` epochs that take about ``seconds`` uninterrupted on
    this machine (at least ``epochs``), and longer where a cold start needs it; ``n``, and the
    cold start in seconds.

    Each restart pays a fixed cost (the interpreter, JAX, the data: seconds), so a workload
    fixed in epochs would make the kills a larger share of the time on a faster machine; fixed
    in seconds, the share stays the same. Kills fall on average ``T / (2 kills)`` apart, and an
    attempt killed before it has compiled its epoch keeps nothing, however well it resumes: so
    ``T`` is also at least ``2 kills`` times a cold start, the time from an empty compilation
    cache to the first stored epoch. Measured from two short runs of the command: the cold
    start, the fixed cost and the cost of an epoch."""
    probes = (1, max(2, epochs // 4))
    times, cold = [], 0.0
    for n in probes:
        place = folder / f"probe-{n}"
        place.mkdir()
        command = make(n)(place / "probe.db")
        assert command is not None
        first, wall = _first_epoch_and_wall(command, _environment(place / "cache"), place)
        times.append(wall)
        cold = cold or first
    per_epoch = max((times[1] - times[0]) / (probes[1] - probes[0]), 1e-3)
    fixed = max(times[0] - per_epoch, 0.0)
    wanted = max(epochs, math.ceil((max(seconds, 2 * kills * cold) - fixed) / per_epoch))
    return make(wanted), wanted, cold


def _first_epoch_and_wall(
    command: list[str], env: dict[str, str], place: Path
) -> tuple[float, float]:
    """Run ``command`` to its end; the seconds until its store (``place/probe.db``) held an
    epoch, and its wall time."""
    store, errors = place / "probe.db", place / "stderr.txt"
    started = time.perf_counter()
    with errors.open("w") as err:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
        first = None
        while process.poll() is None:
            if first is None and _holds_an_epoch(store):
                first = time.perf_counter() - started
            time.sleep(0.02)
    wall = time.perf_counter() - started
    if process.returncode != 0:
        failed = f"{' '.join(command)} failed ({process.returncode})"
        raise RuntimeError(f"{failed}: {errors.read_text()}")
    return first or wall, wall


def _holds_an_epoch(store: Path) -> bool:
    if not store.exists():
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
            return db.execute("SELECT 1 FROM epochs LIMIT 1").fetchone() is not None
    except sqlite3.Error:  # not created yet, or being written
        return False


def kill_loop(
    command_for: Callable[[Path], list[str] | None],
    folder: Path,
    *,
    kills: int,
    seed: int = 0,
) -> Outcome:
    """Kill ``command_for(store)`` ``kills`` times, then let it finish; compare the result with
    one never killed. ``command_for`` is asked again before each start (``train`` goes on with
    ``--resume``), and answers None when there is nothing left to do."""
    whole, killed = folder / "whole.db", folder / "killed.db"
    first = command_for(whole)
    assert first is not None
    _, uninterrupted = _attempt(first, _environment(folder / "cache-whole"), None)
    env = _environment(folder / "cache-killed")
    draw = random.Random(seed)
    problems: list[str] = []
    seen, spent, done = Seen(), 0.0, 0
    while done < kills and (command := command_for(killed)) is not None:
        was_killed, seconds = _attempt(command, env, draw.uniform(0.0, uninterrupted / kills))
        spent += seconds
        if not was_killed:
            break  # it finished between two kills: the work was shorter than planned
        done += 1
        check, now = look(killed)
        problems += [f"after kill {done}: {p}" for p in compare(seen, now, check)]
        seen = now
    if done == kills and (command := command_for(killed)) is not None:
        spent += _attempt(command, env, None)[1]
    problems += [f"kills: {done} of {kills} before it finished"] if done < kills else []
    problems += same_runs(whole, killed)
    return Outcome(done, spent, uninterrupted, len(look(killed)[1].rows), problems)


def same_runs(whole: Path, killed: Path) -> list[str]:
    """Where the killed command's store differs from the uninterrupted one's."""
    from costhill.store import Store

    with Store(whole, read_only=True) as a, Store(killed, read_only=True) as b:
        ours = {r["config_hash"]: r for r in b.list_runs()}
        theirs = {r["config_hash"]: r for r in a.list_runs()}
        if set(ours) != set(theirs) or len(b.list_runs()) != len(a.list_runs()):
            return [f"configs differ: {sorted(ours)} against {sorted(theirs)}"]
        problems = []
        for config_hash, row in theirs.items():
            x, y = a.load(row["run_id"]), b.load(ours[config_hash]["run_id"])
            if y.status != x.status:
                problems.append(f"{config_hash}: {y.status}, not {x.status}")
            elif not _same_numbers(x, y):
                problems.append(f"{config_hash}: numbers differ from the uninterrupted run")
        return problems


def _same_numbers(x: Run, y: Run) -> bool:
    if not np.array_equal(x.all_step_costs(), y.all_step_costs()):
        return False
    mine, theirs = x.params or {}, y.params or {}
    return mine.keys() == theirs.keys() and all(np.array_equal(mine[k], theirs[k]) for k in mine)


def sweep_command(
    folder: Path, epochs: int, seeds: tuple[int, ...] = (0, 1)
) -> Callable[[Path], list[str]]:
    plan = folder / "kill-loop.toml"
    plan.write_text(SWEEP_PLAN.format(epochs=epochs, seeds=list(seeds)))
    return lambda store: [
        sys.executable,
        "-m",
        "costhill",
        "sweep",
        str(plan),
        "--store",
        str(store),
    ]


def train_command(epochs: int) -> Callable[[Path], list[str] | None]:
    def command(store: Path) -> list[str] | None:
        _, seen = look(store)
        if seen.finished:
            return None
        start = ["--resume", "1"] if seen.rows else TRAIN_ARGS.format(epochs=epochs).split()
        return [sys.executable, "-m", "costhill", "train", *start, "--quiet", "--store", str(store)]

    return command


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--sweep-epochs", type=int, default=260)
    parser.add_argument("--train-epochs", type=int, default=1400)
    args = parser.parse_args()
    print("| command | kills | uninterrupted | killed, all attempts | ratio | runs | problems |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, make in (
        ("sweep", lambda f: sweep_command(f, args.sweep_epochs)),
        ("train", lambda f: train_command(args.train_epochs)),
    ):
        with tempfile.TemporaryDirectory() as folder:
            out = kill_loop(make(Path(folder)), Path(folder), kills=args.kills)
        print(
            f"| {name} | {out.kills} | {out.uninterrupted_seconds:.1f} s | "
            f"{out.killed_seconds:.1f} s | {out.ratio:.2f} | {out.runs} | "
            f"{'; '.join(out.problems) or 'none'} |"
        )


if __name__ == "__main__":
    main()
