"""The engine: the compiled training loop, its compile cache, and the process's CPU/XLA set-up.

It writes no files and prints nothing: callers store and show what it returns.
"""

from .cache import COMPILE_CACHE, CompileCache, epoch_key
from .loop import (
    COHORT_FIELDS,
    check,
    check_batch_size,
    check_cohort,
    check_memory,
    cohort_signature,
    train,
    train_cohort,
)
from .process import prepare_process, versions
from .steps import cross_entropy, epoch_order, make_epoch, make_evaluate, split_batches

__all__ = [
    "COHORT_FIELDS",
    "COMPILE_CACHE",
    "CompileCache",
    "check",
    "check_batch_size",
    "check_cohort",
    "check_memory",
    "cohort_signature",
    "cross_entropy",
    "epoch_key",
    "epoch_order",
    "make_epoch",
    "make_evaluate",
    "prepare_process",
    "split_batches",
    "train",
    "train_cohort",
    "versions",
]
