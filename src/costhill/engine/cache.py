"""One cache for the compiled programs of this process, keyed by what shapes each program.

A second run of the same shape (another seed or initializer) must compile nothing, and a run
whose config changes the compiled program must never reuse a stale one. So the key of an epoch
is derived from the config itself: every field, less those named in ``OUTSIDE_THE_EPOCH`` (with
the reason each cannot change the compiled epoch), plus the sizes derived from the data. A field
added to ``RunConfig`` later is in the key until someone argues it out.

    >>> from costhill import RunConfig
    >>> a = epoch_key([RunConfig()], num_train=50_000, batch_size=64, total_steps=7820)
    >>> a == epoch_key([RunConfig(seed=3, init="he_normal")], num_train=50_000, batch_size=64,
    ...                total_steps=7820)
    True
    >>> a == epoch_key([RunConfig(lr=0.1)], num_train=50_000, batch_size=64, total_steps=7820)
    False

Where the learning rate and float hyperparameters are carried in the optimizer state
(``inject``: what the engine does under a constant schedule), their values are arguments of the
epoch too, so one compiled epoch serves a whole study of them; only which hyperparameters are
set, and the values compiled in (flags, integers), stay in the key:

    >>> b = epoch_key([RunConfig()], num_train=50_000, batch_size=64, total_steps=7820, inject=True)
    >>> other = RunConfig().replace(lr=0.1, opt={"b1": 0.8})
    >>> c = epoch_key([other], num_train=50_000, batch_size=64, total_steps=7820, inject=True)
    >>> c == epoch_key([other.replace(lr=0.2, opt={"b1": 0.7})], num_train=50_000, batch_size=64,
    ...                total_steps=7820, inject=True)
    True
    >>> b == c  # b1 set: another program
    False
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import FIELDS, RunConfig
from ..optimizers import is_static

# Config fields that cannot change the compiled epoch, and why.
OUTSIDE_THE_EPOCH = {
    "seed": "seeds the initial parameters and the data order, both arguments of the epoch",
    "init": "shapes only the initialization, a program of its own",
    "bias_init": "shapes only the initialization, a program of its own",
    "epochs": "the loop over epochs runs outside; a schedule's length enters as total_steps",
    "target_accuracy": "read by the host after each epoch",
    "stop_at_target": "read by the host after each epoch",
    "max_seconds": "read by the host after each epoch",
    "dataset": "the images are an argument; their count enters as num_train",
    "validation": "changes only which examples train; their count enters as num_train",
    "split_seed": "changes only which examples train; their count enters as num_train",
}
MODEL_FIELDS = ("model", "hidden", "activation")


def epoch_key(
    configs: Sequence[RunConfig],
    *,
    num_train: int,
    batch_size: int,
    total_steps: int,
    vectorize: bool = False,
    inject: bool = False,
    segments: int = 1,
) -> tuple[Any, ...]:
    """The key of the compiled epoch that trains ``configs`` (one, or a cohort's arms)."""
    first = configs[0]
    fields = tuple(
        (name, _as_compiled(name, getattr(first, name), inject))
        for name in sorted(FIELDS)
        if name not in OUTSIDE_THE_EPOCH
    )
    return (
        fields,
        num_train,
        batch_size,
        total_steps if first.schedule != "constant" else 0,
        first.seed if first.optimizer == "noisy_sgd" else 0,  # its noise key is closed over
        len(configs) if vectorize else 0,
        segments,  # in-epoch snapshots; follows from snapshots and epochs together
    )


def _as_compiled(name: str, value: Any, inject: bool) -> Any:
    """What of a config field the compiled epoch depends on: all of it, but for the values that
    ``inject`` carries in the optimizer state, of which only the names count."""
    if not inject:
        return value
    if name == "lr":
        return "in the optimizer state"
    if name == "opt":
        return tuple((k, v if is_static(v) else "in the optimizer state") for k, v in value)
    return value


def model_key(config: RunConfig) -> tuple[Any, ...]:
    return tuple(getattr(config, name) for name in MODEL_FIELDS)


@dataclass
class CompileCache:
    """Compiled epochs, evaluators and initializations, each built at most once per key.

    ``compilations`` counts the epochs compiled, for tests that a later run compiles nothing.
    """

    epochs: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    evaluators: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    inits: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    compilations: dict[str, int] = field(default_factory=lambda: {"epoch": 0})

    def epoch(self, key: tuple[Any, ...] | None, build: Callable[[], Any]) -> tuple[Any, bool]:
        """The epoch compiled for ``key`` and whether it was cached; a None key (a caller's own
        optimizer, which no key can describe) always builds and keeps nothing."""
        if key is not None and key in self.epochs:
            return self.epochs[key], True
        built = build()
        self.compilations["epoch"] += 1
        if key is not None:
            self.epochs[key] = built
        return built, False

    def evaluator(self, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        if key not in self.evaluators:
            self.evaluators[key] = build()
        return self.evaluators[key]

    def init(self, key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
        if key not in self.inits:
            self.inits[key] = build()
        return self.inits[key]

    def compiled_epochs(self) -> list[Any]:
        """The compiled epoch executables kept so far."""
        return [compiled for compiled, _ in self.epochs.values()]


COMPILE_CACHE = CompileCache()
