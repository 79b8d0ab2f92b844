"""Claims: which process is training which config, so that sweeps sharing a store train each
config once, and a sweep killed with ``kill -9`` leaves nothing that blocks its rerun.

A claim is live while its process runs (checked by pid on this host) or, from another host,
while its heartbeat (refreshed every epoch) is younger than ``STALE_CLAIM_SECONDS``.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

ME = (socket.gethostname(), os.getpid())
STALE_CLAIM_SECONDS = 900.0


def alive(host: str, pid: int, heartbeat: float) -> bool:
    """Whether the process that holds a claim may still be training it."""
    if host == ME[0]:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return time.time() - heartbeat < STALE_CLAIM_SECONDS


class Claims:
    """The claim methods of ``Store`` (which supplies ``db``, ``_transaction``, ``done_hashes``)."""

    db: sqlite3.Connection
    _transaction: Callable[[], AbstractContextManager[None]]
    done_hashes: Callable[[list[str]], set[str]]

    def claim(self, config_hash: str) -> bool:
        """Take a config for this process, unless it is done or another live sweep has it."""
        with self._transaction():
            if self.done_hashes([config_hash]):
                return False
            row = self.db.execute(
                "SELECT host, pid, heartbeat FROM claims WHERE config_hash = ?", (config_hash,)
            ).fetchone()
            if row is not None and (row[0], row[1]) != ME and alive(*row):
                return False
            self.db.execute(
                "INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)",
                (config_hash, *ME, time.time()),
            )
        return True

    def release(self, config_hash: str) -> None:
        with self._transaction():
            self.db.execute(
                "DELETE FROM claims WHERE config_hash = ? AND host = ? AND pid = ?",
                (config_hash, *ME),
            )

    def beat(self, config_hash: str) -> None:
        """Refresh this process's claim on a config (inside the caller's transaction)."""
        self.db.execute(
            "UPDATE claims SET heartbeat = ? WHERE config_hash = ? AND host = ? AND pid = ?",
            (time.time(), config_hash, *ME),
        )
