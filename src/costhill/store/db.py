"""The run store: one SQLite file (WAL mode) holding every run; all of costhill's SQL lives here.

Tables: ``runs`` (config, seed, versions, status, and a summary row per run so that listing stays
fast), ``epochs`` (metrics per epoch), ``step_costs`` (every step's cost, zlib-compressed float32,
one blob per epoch) and ``params`` (final parameters as raw arrays, never pickled). Each epoch is
written in its own transaction, so a run stopped by Ctrl-C or ``kill -9`` keeps what it had done.

    costhill runs --store costhill-runs.db
"""

from __future__ import annotations

import functools
import json
import math
import os
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import numpy as np

from ..config import from_dict
from ..errors import StoreError
from ..records import (
    EpochRecord,
    Run,
    Snapshot,
    TargetReached,
    TrainingState,
    params_from_vector,
    params_layout,
    params_vector,
)
from .claims import ME, Claims, alive
from .schema import (
    DEFAULT_STORE,
    DONE,
    EPOCH_COLUMNS,
    MIGRATIONS,
    SCHEMA,
    SCHEMA_VERSION,
    SUMMARY_COLUMNS,
    TRAINED,
)

# SQLite's default limit on the variables of one statement is 999 in older builds.
_IN_CHUNK = 500


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


T = TypeVar("T")


def _reading(method: Callable[..., T]) -> Callable[..., T]:
    """A read of stored data that a damaged store (a flipped byte, a truncated blob) fails with
    one line naming the store, rather than a zlib or JSON traceback."""

    @functools.wraps(method)
    def read(self: Store, *args: Any, **kwargs: Any) -> T:
        try:
            return method(self, *args, **kwargs)
        except (zlib.error, ValueError, KeyError, TypeError) as err:
            raise StoreError(
                f"store {self.path}: stored data is damaged ({type(err).__name__}: {err}); "
                "nothing was written to it"
            ) from None

    return read


class SweepPruning(NamedTuple):
    """What pruned a tuning sweep's trials: the pruner (``asha``, ``hyperband``, ``median``)
    and the epoch metric it judged (``val_accuracy`` or ``val_cost``)."""

    pruner: str
    metric: str


class SearchedRange(NamedTuple):
    """A continuous range a random or tuning sweep drew one setting from: ``setting`` as
    compare names it (``lr``, ``opt.b1``), for the arms of ``optimizer`` where an
    ``[[axes.optimizer]]`` table set it, or for every arm (``optimizer`` empty)."""

    optimizer: str
    setting: str
    log: bool
    low: float
    high: float


class Store(Claims):
    """An open run store.

    Examples:
      >>> import tempfile, os
      >>> store = Store(os.path.join(tempfile.mkdtemp(), "runs.db"))
      >>> store.list_runs()
      []
    """

    def __init__(
        self, path: str | Path = DEFAULT_STORE, *, create: bool = True, read_only: bool = False
    ) -> None:
        """Open (or, with ``create``, make) the store at ``path``. ``read_only`` opens it the way
        a report reads it while a sweep writes: SQLite's read-only mode, under WAL, which takes
        no lock that a writer waits on (it needs the store's current schema)."""
        self.path = Path(path)
        self.read_only = read_only
        self._inside = False  # in a transaction of _transaction's
        if (read_only or not create) and not self.path.is_file():
            raise StoreError(f"store {self.path}: no such store")
        if self.path.is_dir():
            raise StoreError(f"store {self.path}: is a directory, not a store file")
        try:
            self.db = self._connect()
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master")}
            if tables and "meta" not in tables:
                raise StoreError(f"store {self.path}: an SQLite file, but not a costhill store")
            if read_only:
                if not tables:  # made by the SQLite of some other tool, or by a sweep a moment ago
                    raise StoreError(
                        f"store {self.path}: an empty file, with no costhill tables in it yet"
                    )
                if self._version() < SCHEMA_VERSION:  # migrate once, then read as asked
                    self.db.close()
                    Store(self.path).close()
                    self.db = self._connect()
                self._check_version_for_reading()
                return
            _use_write_ahead_log(self.db, _BUSY_TIMEOUT_SECONDS)
            if not tables:
                self._create()
            self._migrate()
        except sqlite3.DatabaseError as err:
            folder = self.path.resolve().parent
            if not read_only and not os.access(folder, os.W_OK):
                raise StoreError(
                    f"store {self.path}: cannot be written: its folder {folder} is read-only"
                ) from None
            raise StoreError(f"store {self.path}: cannot be opened as a store ({err})") from None

    def _create(self) -> None:
        """Make the tables of a new store, unless another process just made them (two sweeps
        may open one new store at once: the check and the making are one transaction)."""
        with self._transaction():
            if self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
                return
            for statement in _statements(SCHEMA):
                self.db.execute(statement)
            self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _connect(self) -> sqlite3.Connection:
        if self.read_only:
            target, uri = f"{self.path.resolve().as_uri()}?mode=ro", True
        else:
            target, uri = str(self.path), False
        db = sqlite3.connect(target, timeout=_BUSY_TIMEOUT_SECONDS, isolation_level=None, uri=uri)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys = ON")
        return db

    def _check_version_for_reading(self) -> None:
        version = self._version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path}: schema version {version} was written by a newer costhill; "
                f"this one reads versions up to {SCHEMA_VERSION}"
            )

    def _version(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0])

    def _migrate(self) -> None:
        """Bring a store of an older schema up to this one, in place: a backup beside it first
        (``NAME.schema-vN.bak``), then each step in one transaction. A store from a newer
        costhill is refused, naming both versions."""
        version = self._version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {self.path}: schema version {version} was written by a newer costhill; "
                f"this one reads versions up to {SCHEMA_VERSION}"
            )
        if version == SCHEMA_VERSION:
            return
        backup = self.path.with_name(f"{self.path.name}.schema-v{version}.bak")
        if not backup.exists():
            with sqlite3.connect(backup) as copy:
                self.db.backup(copy)
            copy.close()
        with self._transaction():
            version = self._version()  # another process may have migrated meanwhile
            while version < SCHEMA_VERSION:
                for statement in _statements(MIGRATIONS[version]):
                    self.db.execute(statement)
                version += 1
            self.db.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),)
            )

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One all-or-nothing change. A disk that is full or read-only fails it as one line,
        and SQLite has then put the store back as it was before the change began. Inside
        another (``together``) it is part of that one."""
        if self.read_only:
            raise StoreError(f"store {self.path}: opened read-only")
        if self._inside:
            yield
            return
        try:
            self._inside = True
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if self.db.in_transaction:  # SQLite rolls back by itself on a full disk
                    self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
        except sqlite3.OperationalError as err:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise StoreError(
                f"store {self.path}: cannot be written ({err}); it holds what it held before"
            ) from None
        finally:
            self._inside = False

    def together(self) -> AbstractContextManager[None]:
        """Make the writes inside one transaction: all of them are stored, or none.

        A cohort's arms end together: were one stored finished and its partner not, a rerun
        would train the partner alone, in another program, and round its numbers otherwise
        than the uninterrupted sweep did.
        """
        return self._transaction()

    # -- writing -------------------------------------------------------------------------

    def begin(self, run: Run, *, replacing: int | None = None) -> int:
        """Record that ``run`` has started; returns its id (also set on ``run``).

        ``replacing`` names a stopped run of the same config that kept nothing to continue from
        (``stopped_run``): it is trained again from the start under its own id, so that a run
        killed before its first epoch ended leaves no second row behind.
        """
        cfg = run.config
        run.created_at = run.created_at or _now()
        with self._transaction():
            if replacing is not None:
                # Its epochs, costs and snapshots go with it (ON DELETE CASCADE): they are
                # recomputed, number for number, by the same config and seed.
                self.db.execute("DELETE FROM runs WHERE id = ?", (replacing,))
            cursor = self.db.execute(
                "INSERT INTO runs (id, created_at, status, config_hash, config, seed, dataset,"
                " model, init, optimizer, lr, batch_size, regime, num_train, steps_per_epoch,"
                " versions, data, compile_seconds) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    replacing,
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
            self._mark_mine(run.run_id)
        return run.run_id

    def _mark_mine(self, run_id: int) -> None:
        """This process trains ``run_id`` (its host, pid and a heartbeat, renewed each epoch)."""
        self.db.execute(
            "UPDATE runs SET host = ?, pid = ?, heartbeat = ? WHERE id = ?",
            (*ME, time.time(), run_id),
        )

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
            self._write_snapshots(run, record.epoch)
            self._write_state(run)
            self.beat(run.config.config_hash())
            self._mark_mine(int(run.run_id))

    def _write_state(self, run: Run) -> None:
        """The run's state at this epoch, in place of the last one (the store does not grow)."""
        state = run.state
        if state is None:
            return
        leaves = [np.asarray(a).copy(order="C") for a in state.optimizer_leaves]  # 0-d stays 0-d
        self.db.execute(
            "INSERT OR REPLACE INTO training_state VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                run.run_id,
                state.epoch,
                state.steps,
                json.dumps(params_layout(state.params)),
                # Raw, not compressed: float32 weights compress by ~7%, and zlib took longer than
                # the rest of the commit (BENCHMARKS.md, "Resuming").
                params_vector(state.params).astype("<f4").tobytes(),
                json.dumps([[a.dtype.str, list(a.shape)] for a in leaves]),
                b"".join(a.tobytes() for a in leaves),
            ),
        )

    def load_state(self, run_id: int) -> TrainingState | None:
        """What continuing run ``run_id`` needs, as of its last committed epoch (or None)."""
        row = self.db.execute("SELECT * FROM training_state WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        try:
            layout = [(path, tuple(shape)) for path, shape in json.loads(row["layout"])]
            vector = np.frombuffer(row["params"], dtype="<f4").astype(np.float32)
            params = params_from_vector(vector, layout)
            raw, leaves, start = bytes(row["optimizer"]), [], 0
            for dtype, shape in json.loads(row["optimizer_layout"]):
                kind = np.dtype(dtype)
                size = kind.itemsize * int(np.prod(shape, dtype=np.int64))
                leaves.append(
                    np.frombuffer(raw[start : start + size], kind).reshape(tuple(shape)).copy()
                )
                start += size
            if start != len(raw):
                raise ValueError(f"{len(raw) - start} bytes left over")
        except (ValueError, TypeError, zlib.error) as err:
            raise StoreError(f"run {run_id}: its kept training state is damaged ({err})") from None
        return TrainingState(row["epoch"], row["steps"], params, leaves)

    def _write_snapshots(self, run: Run, epoch: int) -> None:
        """The run's snapshots taken in ``epoch`` (and the initial one, with the first epoch):
        each a zlib-compressed float32 vector in sorted path order, with its layout."""
        for snapshot in run.snapshots:
            if snapshot.epoch != epoch and not (epoch == 1 and snapshot.epoch == 0):
                continue
            vector = params_vector(snapshot.params)
            self.db.execute(
                "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?, ?, ?)",
                (
                    run.run_id,
                    snapshot.step,
                    snapshot.epoch,
                    _finite_or_none(snapshot.train_cost),
                    json.dumps(params_layout(snapshot.params)),
                    zlib.compress(vector.astype("<f4").tobytes(), 1),
                ),
            )

    def _write_summary(self, run: Run) -> None:
        summary = run.summary()
        values = [
            _finite_or_none(summary[c]) if isinstance(summary[c], float) else summary[c]
            for c in SUMMARY_COLUMNS
        ]
        t = run.target
        target = None if t is None else json.dumps(vars(t))
        self.db.execute(
            f"UPDATE runs SET status = ?, target = ?, target_epoch = ?, target_step = ?, "
            f"target_seconds = ?, {', '.join(f'{c} = ?' for c in SUMMARY_COLUMNS)} WHERE id = ?",
            (run.status, target, t and t.epoch, t and t.step, t and t.seconds, *values, run.run_id),
        )

    def finish(self, run: Run) -> None:
        """Write the run's final status, summary and parameters."""
        with self._transaction():
            self._write_summary(run)
            self.db.execute("UPDATE runs SET finished_at = ? WHERE id = ?", (_now(), run.run_id))
            self.db.execute("DELETE FROM params WHERE run_id = ?", (run.run_id,))
            self.db.execute("DELETE FROM training_state WHERE run_id = ?", (run.run_id,))
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

    def reopen(self, run: Run) -> None:
        """Mark a stored run ``running`` again: it is being continued (``resumable``)."""
        with self._transaction():
            self.db.execute(
                "UPDATE runs SET status = 'running', finished_at = NULL WHERE id = ?",
                (run.run_id,),
            )
            self._mark_mine(int(run.run_id or 0))

    def resumable(self, run_id: int) -> Run:
        """Stored run ``run_id`` with what continuing it needs (its state, its snapshots), or a
        clear error saying why it cannot be continued."""
        run = self.load(run_id, with_params=False)
        if run.status in TRAINED:
            raise StoreError(f"run {run_id}: is {run.status}; there is nothing to resume")
        run.state = self.load_state(run_id)
        if run.state is None and run.epochs:
            raise StoreError(
                f"run {run_id}: kept no training state (it was trained by a costhill that kept "
                "none, or in a cohort); train its config again"
            )
        run.snapshots = self.load_snapshots(run_id)
        return run

    def interrupted_run(self, config_hash: str) -> int | None:
        """The latest run of this config that stopped part-way and can be continued."""
        stopped = self.stopped_run(config_hash)
        return stopped[0] if stopped is not None and stopped[1] else None

    def stopped_run(self, config_hash: str) -> tuple[int, bool] | None:
        """The latest run of this config that stopped part-way (interrupted, or left running by
        a process that died), and whether it kept a state to continue from."""
        rows = self.db.execute(
            "SELECT r.*, s.run_id IS NOT NULL AS kept FROM runs r "
            "LEFT JOIN training_state s ON s.run_id = r.id "
            "WHERE r.config_hash = ? AND r.status IN ('interrupted', 'running') "
            "ORDER BY r.id DESC",
            (config_hash,),
        )
        for row in rows:
            if row["status"] == "interrupted" or not _still_running(dict(row)):
                return int(row["id"]), bool(row["kept"])
        return None

    def mark(self, run_id: int, status: str) -> None:
        with self._transaction():
            self.db.execute(
                "UPDATE runs SET status = ?, finished_at = ? WHERE id = ?", (status, _now(), run_id)
            )

    def save(self, run: Run) -> int:
        """Store a run trained without a store attached (``costhill.train`` from Python)."""
        run_id = self.save_partial(run)
        self.finish(run)
        return run_id

    def save_partial(self, run: Run) -> int:
        """Store a run as it stands, its epochs (and state) but not its end: one that stopped
        part-way keeps its status and can be resumed."""
        run_id = self.begin(run)
        for record, costs in zip(run.epochs, run.step_costs, strict=True):
            self.add_epoch(run, record, costs)
        return run_id

    def add_to_sweep(self, sweep: str, config_hashes: list[str], *, start: int = 0) -> None:
        """Record which configs make up ``sweep``, at plan positions from ``start`` (idempotent:
        a resumed sweep adds nothing)."""
        with self._transaction():
            self.db.executemany(
                "INSERT OR IGNORE INTO sweep_members VALUES (?, ?, ?)",
                [(sweep, h, start + i) for i, h in enumerate(config_hashes)],
            )

    def set_sweep_pruning(self, sweep: str, pruner: str, metric: str) -> None:
        """Record that ``sweep``'s trials were pruned by ``pruner`` judging ``metric`` (a
        resumed sweep runs its plan as it is now, so the latest plan's word stands)."""
        with self._transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO sweep_pruning VALUES (?, ?, ?)", (sweep, pruner, metric)
            )

    def set_sweep_ranges(self, sweep: str, ranges: Sequence[SearchedRange]) -> None:
        """Record the continuous ranges ``sweep`` draws from, in place of those recorded before
        (a rerun runs its plan as it is now: a widened range is the range from then on)."""
        with self._transaction():
            self.db.execute("DELETE FROM sweep_ranges WHERE sweep = ?", (sweep,))
            self.db.executemany(
                "INSERT INTO sweep_ranges VALUES (?, ?, ?, ?, ?, ?)",
                [(sweep, r.optimizer, r.setting, int(r.log), r.low, r.high) for r in ranges],
            )

    # -- reading -------------------------------------------------------------------------

    def sweep_ranges(self, sweep: str) -> list[SearchedRange]:
        """The continuous ranges ``sweep`` drew from (none for a grid, or a store from before
        version 5)."""
        rows = self.db.execute(
            "SELECT optimizer, setting, log, low, high FROM sweep_ranges WHERE sweep = ? "
            "ORDER BY optimizer, setting",
            (sweep,),
        ).fetchall()
        return [SearchedRange(r[0], r[1], bool(r[2]), r[3], r[4]) for r in rows]

    def sweep_pruning(self, sweep: str) -> SweepPruning | None:
        """The pruner of ``sweep`` and what it judged on, or None where none was recorded."""
        row = self.db.execute(
            "SELECT pruner, metric FROM sweep_pruning WHERE sweep = ?", (sweep,)
        ).fetchone()
        return None if row is None else SweepPruning(row["pruner"], row["metric"])

    def done_hashes(self, config_hashes: list[str]) -> set[str]:
        """Which of these configs already have a finished, diverged or pruned run."""
        query = "SELECT DISTINCT config_hash FROM runs WHERE status IN (?, ?, ?) AND config_hash IN"
        return {r[0] for r in self._select_in(query, config_hashes, before=TRAINED)}

    def _select_in(
        self, query: str, values: Sequence[Any], *, before: Iterable[Any] = (), after: str = ""
    ) -> Iterator[sqlite3.Row]:
        """Rows of ``query`` followed by ``IN (values)``, asked in chunks that SQLite accepts."""
        for start in range(0, len(values), _IN_CHUNK):
            chunk = list(values[start : start + _IN_CHUNK])
            marks = ",".join("?" * len(chunk))
            yield from self.db.execute(f"{query} ({marks}) {after}", (*before, *chunk))

    @_reading
    def epoch_rows(self, run_ids: Sequence[int], columns: Sequence[str] = EPOCH_COLUMNS):
        """Every stored epoch of ``run_ids`` as rows of ``run_id`` and ``columns``, in run and
        epoch order."""
        unknown = set(columns) - set(EPOCH_COLUMNS)
        if unknown:
            raise StoreError(f"columns {sorted(unknown)}: not epoch columns")
        query = f"SELECT run_id, {', '.join(columns)} FROM epochs WHERE run_id IN"
        return self._select_in(query, run_ids, after="ORDER BY run_id, epoch")

    def sweeps(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT sweep FROM sweep_members")]

    def sweeps_of(self, config_hash: str) -> list[str]:
        """The sweeps whose plans hold the config ``config_hash``, by name."""
        query = "SELECT DISTINCT sweep FROM sweep_members WHERE config_hash = ? ORDER BY sweep"
        return [r[0] for r in self.db.execute(query, (config_hash,))]

    @_reading
    def sweep_runs(self, sweep: str, *, statuses: Sequence[str] = DONE) -> list[dict]:
        """The latest run of each config of ``sweep`` among those of ``statuses`` (finished or
        diverged, unless asked: a pruned run is never compared or chosen), as summary rows."""
        marks = ", ".join("?" * len(statuses))
        rows = self.db.execute(
            "SELECT r.* FROM runs r JOIN sweep_members m ON r.config_hash = m.config_hash "
            f"WHERE m.sweep = ? AND r.status IN ({marks}) AND r.id = (SELECT MAX(id) FROM runs "
            f"WHERE config_hash = r.config_hash AND status IN ({marks})) ORDER BY m.position",
            (sweep, *statuses, *statuses),
        )
        return [self._row_dict(r) for r in rows]

    def latest_runs(self, config_hashes: list[str]) -> dict[str, dict]:
        """The latest run of each of these configs that ran its course or was pruned."""
        query = "SELECT * FROM runs WHERE status IN (?, ?, ?) AND config_hash IN"
        rows = self._select_in(query, config_hashes, before=TRAINED, after="ORDER BY id")
        return {row["config_hash"]: self._row_dict(row) for row in rows}

    @_reading
    def list_runs(
        self, *, status: str | None = None, limit: int | None = None, sweep: str | None = None
    ) -> list[dict]:
        """Summary rows of the stored runs (of one status; of one sweep's configs, every run of
        them; the last ``limit``), in id order. A run left ``running`` by a process that died
        shows as ``interrupted``."""
        query, where, args = "SELECT * FROM runs", [], []
        if sweep is not None:
            if sweep not in (sweeps := self.sweeps()):
                known = ", ".join(sweeps) or "none"
                raise StoreError(f"sweep {sweep!r}: not in {self.path} (sweeps: {known})")
            where.append("config_hash IN (SELECT config_hash FROM sweep_members WHERE sweep = ?)")
            args.append(sweep)
        if status:
            stored = (
                ("interrupted", "running") if status in ("interrupted", "running") else (status,)
            )
            where.append(f"status IN ({','.join('?' * len(stored))})")
            args += list(stored)
        if where:
            query += " WHERE " + " AND ".join(where)
        rows = [self._row_dict(r) for r in self.db.execute(query + " ORDER BY id", args)]
        if status:
            rows = [r for r in rows if r["status"] == status]
        return rows[-limit:] if limit else rows

    @staticmethod
    def _row_dict(row: sqlite3.Row) -> dict[str, Any]:
        d = dict(row)
        for key in ("config", "versions", "data", "target"):
            if d.get(key) is not None:
                d[key] = json.loads(d[key])
        d["run_id"] = d.pop("id")
        if d["status"] == "running" and not _still_running(d):
            d["status"] = "interrupted"  # its process died without saying so (kill -9, a crash)
        return d

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        """Reads that see one state of the store: a run being written by another process is
        read as it stood at one commit (WAL's snapshot isolation), never half of one epoch."""
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    @_reading
    def load(self, run_id: int, *, with_params: bool = True) -> Run:
        with self._snapshot():
            return self._load(run_id, with_params=with_params)

    def _load(self, run_id: int, *, with_params: bool) -> Run:
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

    @_reading
    def snapshot_index(self, run_id: int) -> list[dict[str, Any]]:
        """Each stored snapshot of a run without its parameters: step, epoch, training cost and
        stored bytes."""
        rows = self.db.execute(
            "SELECT step, epoch, train_cost, length(data) AS bytes FROM snapshots "
            "WHERE run_id = ? ORDER BY step",
            (run_id,),
        )
        return [dict(r) for r in rows]

    def load_snapshots(self, run_id: int) -> list[Snapshot]:
        """A run's snapshots with their parameters, in step order."""
        rows = self.db.execute(
            "SELECT * FROM snapshots WHERE run_id = ? ORDER BY step", (run_id,)
        ).fetchall()
        snapshots = []
        for r in rows:
            layout = [(path, tuple(shape)) for path, shape in json.loads(r["layout"])]
            try:
                params = params_from_vector(_read_vector(r["data"]), layout)
            except (ValueError, zlib.error) as err:
                message = f"run {run_id}: snapshot at step {r['step']} is damaged ({err})"
                raise StoreError(message) from None
            snapshots.append(Snapshot(r["step"], r["epoch"], r["train_cost"], params))
        return snapshots

    def save_sharpness(self, run_id: int, examples: int, values: dict[str, Any]) -> None:
        """Keep the sharpness measured at a run's end point on ``examples`` training examples."""
        with self._transaction():
            self.db.execute(
                "INSERT OR REPLACE INTO sharpness VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    examples,
                    _finite_or_none(values["top_eigenvalue"]),
                    _finite_or_none(values["trace"]),
                    values["iterations"],
                    values["probes"],
                    values["seconds"],
                    _now(),
                ),
            )

    @_reading
    def sharpness(self, run_id: int, examples: int | None = None) -> dict[str, Any] | None:
        """The latest sharpness stored for a run (measured on ``examples`` examples, if given)."""
        query = "SELECT * FROM sharpness WHERE run_id = ?"
        args: list[Any] = [run_id]
        if examples is not None:
            query += " AND examples = ?"
            args.append(examples)
        row = self.db.execute(query + " ORDER BY created_at DESC LIMIT 1", args).fetchone()
        return None if row is None else dict(row)

    @_reading
    def load_params(self, run_id: int) -> dict[str, np.ndarray]:
        return {
            r["path"]: np.frombuffer(zlib.decompress(r["data"]), dtype=np.dtype(r["dtype"]))
            .reshape(json.loads(r["shape"]))
            .copy()
            for r in self.db.execute(
                "SELECT * FROM params WHERE run_id = ? ORDER BY path", (run_id,)
            )
        }


def _statements(sql: str) -> list[str]:
    r"""The statements of a script of the schema, its ``--`` comments dropped first so that a
    semicolon in one cannot split a statement (the schema has no string literal with ``--``).

    >>> _statements("-- a note; with a semicolon\nCREATE TABLE t (x);\n-- end")
    ['\nCREATE TABLE t (x)']
    """
    bare = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return [statement for statement in bare.split(";") if statement.strip()]


def _still_running(row: dict[str, Any]) -> bool:
    """Whether the process training a ``running`` run may still be at it: by its pid on this
    host, by its heartbeat from elsewhere (``claims.alive``); a run from before the store kept
    its process is taken at its word."""
    if row.get("host") is None or row.get("pid") is None:
        return True
    return alive(row["host"], row["pid"], row.get("heartbeat") or 0.0)


def _read_vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(zlib.decompress(blob), dtype="<f4").astype(np.float32)


def load_run(run_id: int, store: str | Path = DEFAULT_STORE) -> Run:
    """Load a stored run, with its per-epoch metrics, step costs and final parameters."""
    with Store(store, create=False) as s:
        return s.load(run_id)
