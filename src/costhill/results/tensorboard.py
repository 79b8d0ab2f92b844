"""TensorBoard event files for runs, through tensorboardX (the optional costhill[tensorboard]).

    costhill train --preset quick --tensorboard tb/
    tensorboard --logdir tb/

One subdirectory per run. Per epoch: train, validation and test cost and accuracy, and training
seconds; per step: the cost, as block means of at most ``STEP_POINTS`` points an epoch, because a
stochastic epoch has 60,000 steps. The run's config is written as text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..records import EpochRecord, Run

STEP_POINTS = 1000


def run_directory(run: Run) -> str:
    cfg = run.config
    return (
        f"run-{run.run_id}-{cfg.optimizer}-lr{cfg.lr:g}-{cfg.init.replace(':', '_')}"
        f"-B{run.batch_size}-seed{cfg.seed}"
    )


class TensorBoardWriter:
    """Writes one run's events as its epochs end."""

    def __init__(self, log_dir: str | Path, run: Run) -> None:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ConfigError(
                "log_dir needs tensorboardX: pip install 'costhill[tensorboard]'"
            ) from None
        self.writer = SummaryWriter(str(Path(log_dir) / run_directory(run)))
        self.writer.add_text("config", json.dumps(run.config.to_dict(), indent=1))
        self.steps_done = 0

    def epoch(self, run: Run, record: EpochRecord, costs: Any) -> None:
        costs = np.asarray(costs, dtype=np.float64)
        block = max(1, int(np.ceil(len(costs) / STEP_POINTS)))
        for start in range(0, len(costs), block):
            value = float(np.mean(costs[start : start + block]))
            self.writer.add_scalar("cost/step", value, self.steps_done + start + 1)
        self.steps_done += len(costs)
        for name in ("train", "val", "test"):
            for metric in ("cost", "accuracy"):
                value = getattr(record, f"{name}_{metric}")
                if value is not None and np.isfinite(value):
                    self.writer.add_scalar(f"{metric}/{name}", value, record.epoch)
        self.writer.add_scalar("cost/epoch_mean_step", record.mean_step_cost, record.epoch)
        self.writer.add_scalar("seconds/epoch", record.seconds, record.epoch)

    def close(self) -> None:
        self.writer.close()


def write_run(run: Run, log_dir: str | Path) -> Path:
    """Write a finished (or stored) run's events in one go."""
    writer = TensorBoardWriter(log_dir, run)
    for record, costs in zip(run.epochs, run.step_costs, strict=True):
        writer.epoch(run, record, costs)
    writer.close()
    return Path(log_dir) / run_directory(run)
