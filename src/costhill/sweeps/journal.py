"""Optuna's journal file, written the way a tuning sweep's driver needs it.

The lines are Optuna's own (``JournalFileBackend`` reads this file, and so does
optuna-dashboard); only the writing differs. Optuna's backend takes a lock file and forces every
line to disk, a few syscalls and an ``fsync`` per call into the study: most of what a tuning
sweep of cheap runs spends in Optuna (BENCHMARKS.md, "Tuning"). Here each call is one ``write``
to a descriptor opened for appending, which the kernel never interleaves with another writer's
on a local file system, so no lock is needed. A line written is in the kernel when the call
returns, so a killed sweep loses none; the file is forced to disk when the sweep closes it (and
by the kernel within seconds). What a power cut could lose, the store knows: a trial asked again
is drawn again the same (its sampler is seeded by the trials asked before it), and its runs are
found in the store and told from there, not trained again; a journal lost whole is made again
from the store (``tuning.stored_points``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Generator, Iterator
from typing import Any

from optuna.storages.journal import JournalFileBackend

from ..errors import StoreError


def check_journal(path: str) -> None:
    """Raise ``StoreError`` naming the first line of the journal at ``path`` that is not one of
    Optuna's. Optuna reads past a bad last line (as a write still under way) but appends after
    it, and then no reader gets past it: so a sweep checks the whole file before it writes."""
    with open(path, "rb") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("it is cut short, with no line end")
                json.loads(line)
            except ValueError as err:  # not JSON or not UTF-8 too
                raise _unreadable(path, f"line {number}: {err}") from None


def _unreadable(path: str, why: str) -> StoreError:
    return StoreError(
        f"journal {path}: not Optuna's ({why}); the file is left as it is: restore it, or "
        "move it aside and the next run rebuilds its studies from the runs in the store"
    )


class SweepJournal(JournalFileBackend):
    """A journal file appended with one ``write`` a call and forced to disk on ``close``.

    Examples:
      >>> import tempfile, optuna
      >>> path = tempfile.mkdtemp() + "/runs.db.optuna.journal"
      >>> journal = SweepJournal(path)
      >>> study = optuna.create_study(storage=optuna.storages.JournalStorage(journal))
      >>> study.enqueue_trial({"x": 1.0})
      >>> journal.close()
      >>> reader = optuna.storages.journal.JournalFileBackend(path)
      >>> [log["op_code"] for log in reader.read_logs(0)]  # a study made, a trial queued
      [0, 4]
    """

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path
        self._descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
        try:
            yield from super().read_logs(log_number_from)  # a generator: it fails as it is read
        except ValueError as err:  # not JSON, not UTF-8, or a line cut short
            raise _unreadable(self.path, str(err)) from None

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
        data = memoryview(lines.encode("utf-8"))
        while data:  # a regular file takes it in one write unless the disk fills
            data = data[os.write(self._descriptor, data) :]

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the journal from every other ``SweepJournal`` of the file (in any process) until
        the block ends: for a study's first look, where a sweep that finds it new queues its
        first points, and another sweep starting at the same moment must find them queued. The
        lock is advisory and only taken there; appending needs none."""
        try:
            fcntl.flock(self._descriptor, fcntl.LOCK_EX)
        except OSError:  # no locks on this file system (ENOLCK): at worst, points queued twice
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(self._descriptor, fcntl.LOCK_UN)

    def close(self) -> None:
        """Force what was written to disk, and close the file."""
        os.fsync(self._descriptor)
        os.close(self._descriptor)
