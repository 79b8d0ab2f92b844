"""Writes tests/data/runs.db, the small committed store that the results tests read.

    python tests/data/make_fixture.py

The bundled ``hill`` plan on the shipped sample with logistic regression (small parameters, so
the store stays small): full-batch, mini-batch and stochastic descent from one start, with
snapshots. The tests read it only; they never retrain it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("COSTHILL_COMPILATION_CACHE", "off")

from costhill.store import Store  # noqa: E402
from costhill.sweeps import load_plan, run_plan  # noqa: E402

TARGET = Path(__file__).with_name("runs.db")
SETTINGS = {
    "dataset": "fashion-mnist-sample",
    "model": "logreg",
    "epochs": 3,
    "snapshots": 6,
    "lr": 0.05,
}


def main() -> None:
    for leftover in TARGET.parent.glob(f"{TARGET.name}*"):
        leftover.unlink()
    with Store(TARGET) as store:
        run_plan(load_plan("hill", overrides=SETTINGS), store)
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.db.execute("PRAGMA journal_mode = DELETE")  # one file to commit
    print(f"wrote {TARGET} ({TARGET.stat().st_size / 1e6:.2f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()
