"""The run store: one SQLite file (WAL mode) holding every run, the one module that writes results.

Tables: ``runs`` (config, seed, versions, status, and a summary row per run so that listing stays
fast), ``epochs`` (metrics per epoch), ``step_costs`` (every step's cost, zlib-compressed float32,
one blob per epoch) and ``params`` (final parameters as raw arrays, never pickled). Each epoch is
written in its own transaction, so a run stopped by Ctrl-C or ``kill -9`` keeps what it had done.

    costhill runs --store costhill-runs.db
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .config import from_dict
from .errors import StoreError
from .training import EpochRecord, Run, TargetReached

SCHEMA_VERSION = 1
DEFAULT_STORE = "costhill-runs.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    config TEXT NOT NULL,
    seed INTEGER NOT NULL,
    dataset TEXT NOT NULL,
    model TEXT NOT NULL,
    init TEXT NOT NULL,
    optimizer TEXT NOT NULL,
    lr REAL NOT NULL,
    batch_size INTEGER NOT NULL,
    regime TEXT NOT NULL,
    num_train INTEGER NOT NULL,
    steps_per_epoch INTEGER NOT NULL,
    versions TEXT NOT NULL,
    data TEXT NOT NULL,
    epochs INTEGER NOT NULL DEFAULT 0,
    steps INTEGER NOT NULL DEFAULT 0,
    seconds REAL NOT NULL DEFAULT 0,
    compile_seconds REAL NOT NULL DEFAULT 0,
    train_accuracy REAL,
    val_accuracy REAL,
    test_accuracy REAL,
    train_cost REAL,
    test_cost REAL,
    diverged_step INTEGER,
    best_val_accuracy REAL,
    test_at_best_val REAL,
    target_epoch INTEGER,
    target_step INTEGER,
    target_seconds REAL,
    target TEXT
);
CREATE INDEX IF NOT EXISTS runs_config_hash ON runs(config_hash, status);
CREATE TABLE IF NOT EXISTS sweep_members (
    sweep TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (sweep, config_hash)
);
CREATE TABLE IF NOT EXISTS claims (
    config_hash TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    heartbeat REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    mean_step_cost REAL,
    train_cost REAL,
    train_accuracy REAL,
    val_cost REAL,
    val_accuracy REAL,
    test_cost REAL,
    test_accuracy REAL,
    seconds REAL NOT NULL,
    eval_seconds REAL NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS step_costs (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    count INTEGER NOT NULL,
    costs BLOB NOT NULL,
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS params (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    dtype TEXT NOT NULL,
    shape TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (run_id, path)
);
"""
_SUMMARY_COLUMNS = (
    "epochs steps seconds compile_seconds train_accuracy val_accuracy test_accuracy "
    "train_cost test_cost diverged_step best_val_accuracy test_at_best_val"
).split()
DONE = ("finished", "diverged")  # statuses of runs a sweep need not train again
EPOCH_COLUMNS = [
    "epoch",
    "steps",
    "mean_step_cost",
    "train_cost",
    "train_accuracy",
    "val_cost",
    "val_accuracy",
    "test_cost",
    "test_accuracy",
    "seconds",
    "eval_seconds",
]


_ME = (socket.gethostname(), os.getpid())
STALE_CLAIM_SECONDS = 900.0


def _alive(host: str, pid: int, heartbeat: float) -> bool:
    if host == _ME[0]:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return time.time() - heartbeat < STALE_CLAIM_SECONDS


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _finite_or_none(value: float | None) -> float | None:
    # SQLite has no NaN; a diverged cost is kept as NULL, and the run's status says why.
    if value is None or not math.isfinite(value):
        return None
    return float(value)


_BUSY_TIMEOUT_SECONDS = 30.0


def _use_write_ahead_log(db: sqlite3.Connection, timeout: float) -> None:
    """Put the store in WAL mode (readers and one writer at once: sweeps share a store).

    The switch needs the file to itself, and SQLite answers a concurrent switch with
    "database is locked" at once instead of waiting its busy timeout, so two sweeps that open a
    new store together would fail. Retried here until ``timeout``; the mode is kept in the file,
    so once any process has switched, the others read "wal" and write nothing.
    """
    deadline = time.monotonic() + timeout
    pause = 0.005
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


class Store:
    """An open run store.

    Examples:
      >>> import tempfile, os
      >>> store = Store(os.path.join(tempfile.mkdtemp(), "runs.db"))
      >>> store.list_runs()
      []
    """

    def __init__(self, path: str | Path = DEFAULT_STORE, *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise StoreError(f"--store {self.path}: no such store")
        if self.path.is_dir():
            raise StoreError(f"--store {self.path}: is a directory, not a store file")
        try:
            self.db = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None
            )
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA foreign_keys = ON")
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master")}
            if tables and "meta" not in tables:
                raise StoreError(f"--store {self.path}: an SQLite file, but not a costhill store")
            _use_write_ahead_log(self.db, _BUSY_TIMEOUT_SECONDS)
            if not tables:
                self.db.executescript(
                    f"BEGIN IMMEDIATE; {_SCHEMA} INSERT OR IGNORE INTO meta "
                    f"VALUES ('schema_version', '{SCHEMA_VERSION}'); COMMIT;"
                )
            version = self.db.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone()[0]
            if int(version) != SCHEMA_VERSION:
                raise StoreError(
                    f"--store {self.path}: schema version {version}, this costhill reads "
                    f"version {SCHEMA_VERSION}"
                )
        except sqlite3.DatabaseError as err:
            raise StoreError(f"--store {self.path}: cannot be opened as a store ({err})") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- writing -------------------------------------------------------------------------

    def begin(self, run: Run) -> int:
        """Record that ``run`` has started; returns its id (also set on ``run``)."""
        cfg = run.config
        run.created_at = run.created_at or _now()
        with self._transaction():
            cursor = self.db.execute(
                "INSERT INTO runs (created_at, status, config_hash, config, seed, dataset, model,"
                " init, optimizer, lr, batch_size, regime, num_train, steps_per_epoch, versions,"
                " data, compile_seconds) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run.created_at,
                    run.status,
                    cfg.config_hash(),
                    json.dumps(cfg.to_dict()),
                    cfg.seed,
                    cfg.dataset,
                    cfg.model,
                    cfg.init,
                    cfg.optimizer,
                    cfg.lr,
                    run.batch_size,
                    run.regime,
                    run.num_train,
                    run.steps_per_epoch,
                    json.dumps(run.versions),
                    json.dumps(run.data),
                    run.compile_seconds,
                ),
            )
        run.run_id = int(cursor.lastrowid or 0)
        return run.run_id

    def add_epoch(self, run: Run, record: EpochRecord, costs: np.ndarray) -> None:
        """Write one epoch's metrics and step costs, and the run's summary, in one transaction."""
        if run.run_id is None:
            raise StoreError("add_epoch: the run was never begun in this store")
        values = [getattr(record, c) for c in EPOCH_COLUMNS]
        values = [_finite_or_none(v) if isinstance(v, float) else v for v in values]
        blob = zlib.compress(np.asarray(costs, dtype="<f4").tobytes())
        with self._transaction():
            self.db.execute(
                f"INSERT INTO epochs (run_id, {', '.join(EPOCH_COLUMNS)}) "
                f"VALUES (?{', ?' * len(EPOCH_COLUMNS)})",
                (run.run_id, *values),
            )
            self.db.execute(
                "INSERT INTO step_costs VALUES (?, ?, ?, ?)",
                (run.run_id, record.epoch, len(costs), blob),
            )
            self._write_summary(run)
            self.db.execute(
                "UPDATE claims SET heartbeat = ? WHERE config_hash = ? AND host = ? AND pid = ?",
                (time.time(), run.config.config_hash(), *_ME),
            )

    def _write_summary(self, run: Run) -> None:
        summary = run.summary()
        values = [
            _finite_or_none(summary[c]) if isinstance(summary[c], float) else summary[c]
            for c in _SUMMARY_COLUMNS
        ]
        t = run.target
        target = None if t is None else json.dumps(vars(t))
        self.db.execute(
            f"UPDATE runs SET status = ?, target = ?, target_epoch = ?, target_step = ?, "
            f"target_seconds = ?, {', '.join(f'{c} = ?' for c in _SUMMARY_COLUMNS)} WHERE id = ?",
            (run.status, target, t and t.epoch, t and t.step, t and t.seconds, *values, run.run_id),
        )

    def finish(self, run: Run) -> None:
        """Write the run's final status, summary and parameters."""
        with self._transaction():
            self._write_summary(run)
            self.db.execute("UPDATE runs SET finished_at = ? WHERE id = ?", (_now(), run.run_id))
            self.db.execute("DELETE FROM params WHERE run_id = ?", (run.run_id,))
            for path, array in (run.params or {}).items():
                array = np.ascontiguousarray(array)
                self.db.execute(
                    "INSERT INTO params VALUES (?, ?, ?, ?, ?)",
                    (
                        run.run_id,
                        path,
                        array.dtype.str,
                        json.dumps(list(array.shape)),
                        zlib.compress(array.tobytes()),
                    ),
                )

    def mark(self, run_id: int, status: str) -> None:
        with self._transaction():
            self.db.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?", (status, _now(), run_id)
            )

    def save(self, run: Run) -> int:
        """Store a run trained without a store attached (``costhill.train`` from Python)."""
        run_id = self.begin(run)
        for record, costs in zip(run.epochs, run.step_costs, strict=True):
            self.add_epoch(run, record, costs)
        self.finish(run)
        return run_id

    def claim(self, config_hash: str) -> bool:
        """Take a config for this process, unless it is done or another live sweep has it.

        A claim is live while its process runs (checked by pid on this host) or, from another
        host, while its heartbeat (refreshed every epoch) is younger than ``STALE_CLAIM_SECONDS``.
        So two sweeps of one plan into one store train each config once, and a sweep killed with
        ``kill -9`` leaves nothing that blocks its rerun.
        """
        with self._transaction():
            if self.done_hashes([config_hash]):
                return False
            row = self.db.execute(
                "SELECT host, pid, heartbeat FROM claims WHERE config_hash = ?", (config_hash,)
            ).fetchone()
            if row is not None and (row[0], row[1]) != _ME and _alive(*row):
                return False
            self.db.execute(
                "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)",
                (config_hash, *_ME, time.time()),
            )
        return True

    def release(self, config_hash: str) -> None:
        with self._transaction():
            self.db.execute(
                "DELETE FROM claims WHERE config_hash = ? AND host = ? AND pid = ?",
                (config_hash, *_ME),
            )

    def add_to_sweep(self, sweep: str, config_hashes: list[str]) -> None:
        """Record which configs make up ``sweep`` (idempotent: a resumed sweep adds nothing)."""
        with self._transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO sweep_members VALUES (?, ?, ?)",
                [(sweep, h, i) for i, h in enumerate(config_hashes)],
            )

    # -- reading -------------------------------------------------------------------------

    def done_hashes(self, config_hashes: list[str]) -> set[str]:
        """Which of these configs already have a finished or diverged run."""
        done: set[str] = set()
        for start in range(0, len(config_hashes), 500):
            chunk = config_hashes[start : start + 500]
            marks = ",".join("?" * len(chunk))
            done.update(
                r[0]
                for r in self.db.execute(
                    f"SELECT DISTINCT config_hash FROM runs WHERE status IN (?, ?) "
                    f"AND config_hash IN ({marks})",
                    (*DONE, *chunk),
                )
            )
        return done

    def sweeps(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT sweep FROM sweep_members")]

    def sweep_runs(self, sweep: str) -> list[dict]:
        """The latest finished or diverged run of each config of ``sweep`` (summary rows)."""
        rows = self.db.execute(
            "SELECT r.* FROM runs r JOIN sweep_members m ON r.config_hash = m.config_hash "
            "WHERE m.sweep = ? AND r.status IN (?, ?) AND r.id = (SELECT MAX(id) FROM runs "
            "WHERE config_hash = r.config_hash AND status IN (?, ?)) ORDER BY m.position",
            (sweep, *DONE, *DONE),
        )
        return [self._row_dict(r) for r in rows]

    def list_runs(self, *, status: str | None = None, limit: int | None = None) -> list[dict]:
        query = "SELECT * FROM runs"
        args: list[Any] = []
        if status:
            query += " WHERE status = ?"
            args.append(status)
        query += " ORDER BY id"
        if limit:
            query = f"SELECT * FROM ({query} DESC LIMIT ?) ORDER BY id"
            args.append(limit)
        return [self._row_dict(r) for r in self.db.execute(query, args)]

    @staticmethod
    def _row_dict(row: sqlite3.Row) -> dict[str, Any]:
        d = dict(row)
        for key in ("config", "versions", "data", "target"):
            if d.get(key) is not None:
                d[key] = json.loads(d[key])
        d["run_id"] = d.pop("id")
        return d

    def load(self, run_id: int, *, with_params: bool = True) -> Run:
        row = self.db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise StoreError(f"run {run_id}: not in {self.path}")
        d = self._row_dict(row)
        epochs = [
            EpochRecord(**{c: r[c] for c in EPOCH_COLUMNS})
            for r in self.db.execute(
                "SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)
            )
        ]
        step_costs = [
            np.frombuffer(zlib.decompress(r["costs"]), dtype="<f4").astype(np.float32)
            for r in self.db.execute(
                "SELECT costs FROM step_costs WHERE run_id = ? ORDER BY epoch", (run_id,)
            )
        ]
        params = self.load_params(run_id) if with_params else None
        return Run(
            config=from_dict(d["config"], source=f"run {run_id}"),
            status=d["status"],
            regime=d["regime"],
            batch_size=d["batch_size"],
            num_train=d["num_train"],
            steps_per_epoch=d["steps_per_epoch"],
            epochs=epochs,
            step_costs=step_costs,
            params=params or None,
            compile_seconds=d["compile_seconds"],
            diverged_step=d["diverged_step"],
            target=TargetReached(**d["target"]) if d["target"] else None,
            data=d["data"],
            versions=d["versions"],
            run_id=run_id,
            created_at=d["created_at"],
        )

    def load_params(self, run_id: int) -> dict[str, np.ndarray]:
        return {
            r["path"]: np.frombuffer(zlib.decompress(r["data"]), dtype=np.dtype(r["dtype"]))
            .reshape(json.loads(r["shape"]))
            .copy()
            for r in self.db.execute(
                "SELECT * FROM params WHERE run_id = ? ORDER BY path", (run_id,)
            )
        }


def load_run(run_id: int, store: str | Path = DEFAULT_STORE) -> Run:
    """Load a stored run, with its per-epoch metrics, step costs and final parameters."""
    with Store(store, create=False) as s:
        return s.load(run_id)
