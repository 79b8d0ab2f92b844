"""The same work in costhill and in each peer: PyTorch eager, Keras 3 (TensorFlow), NumPy.

Every peer gets the seed MLP 784-200-100-30-10 (ReLU, Glorot-uniform weights, zero biases), the
same float32 images, shuffled batches, and softmax cross-entropy on logits. Timings exclude
warm-up (first call, tracing, compilation) and evaluation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .limits import SEED_SIZES

ROOT = Path(__file__).resolve().parents[1]


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# -- costhill ----------------------------------------------------------------------------------


def run_config(config: dict, **fixed):
    """A ``RunConfig`` from a turn's plain (JSON) config and ``fixed`` fields."""
    from costhill.config import from_dict

    return from_dict({**config, **fixed}, source="bench config")


def costhill_epochs(data, *, epochs: int, **config) -> tuple[list[float], float]:
    """Training seconds of each epoch, and the seconds spent compiling the epoch (costhill's own
    timing: compilation and evaluation apart from the epochs)."""
    from costhill import train

    cfg = run_config(config, dataset=data.name, validation=len(data.validation), epochs=epochs)
    run = train(cfg, data=data)
    return [e.seconds for e in run.epochs], run.compile_seconds


def costhill_turn(
    env: dict[str, str] | None = None, compile_cache: str | os.PathLike | None = None, **config
) -> Callable[[], float]:
    """A timer of one costhill epoch, for turns taken with the peers: each call trains a fresh
    two-epoch run in a new process, started the way ``costhill train`` starts one (``bench.turn``),
    and returns its second epoch's seconds. A run's first epoch measured ~8% slower at batch 1
    (the data had just been copied in), and later epochs all alike. The XLA thread counts the
    turns had are collected in the timer's ``threads``, and their epoch compile seconds in its
    ``compile_seconds``; ``env`` replaces the process's environment.

    ``compile_cache``: the folder where the turns keep their compilations, as ``costhill train``
    keeps them (``costhill.engine.compilation_cache``: a subfolder per JAX version and XLA
    thread count),
    so that every turn after a config's first loads its executables instead of compiling them
    (~3 s of a turn's ~6 s here); the timed epoch runs the same executable either way. Without
    it the turns cache nothing, and never read the user's cache: each compiles, as reported.
    """
    threads: list[int | None] = []
    compile_seconds: list[float] = []
    environment = dict(os.environ if env is None else env)
    environment.pop("JAX_COMPILATION_CACHE_DIR", None)  # it would override the folder chosen here
    environment["COSTHILL_COMPILATION_CACHE"] = (
        "off" if compile_cache is None else str(compile_cache)
    )

    def turn() -> float:
        done = subprocess.run(
            [sys.executable, "-m", "bench.turn", json.dumps(config)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=environment,
        )
        if done.returncode != 0:
            raise RuntimeError(f"costhill turn {config} failed:\n{done.stderr}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        threads.append(result["xla_cpu_threads"])
        compile_seconds.append(result["compile_seconds"])
        return float(result["seconds"][1])

    turn.threads = threads  # type: ignore[attr-defined]
    turn.compile_seconds = compile_seconds  # type: ignore[attr-defined]
    return turn


def costhill_time_to_test_accuracy(
    data, target: float, max_epochs: int, **config
) -> tuple[float, int | None]:
    """(training seconds, epochs) until test accuracy first reaches ``target``; when it does not
    within ``max_epochs``, (the seconds of all of them, None): the time to ``target`` is longer."""
    from costhill import train

    cfg = run_config(
        config, validation=0, epochs=max_epochs, target_accuracy=target, stop_at_target=True
    )
    run = train(cfg, data=data)
    if run.target is None:
        return run.train_seconds, None
    return run.target.seconds, run.target.epoch


# -- PyTorch eager -------------------------------------------------------------------------------


def _torch_mlp():
    import torch

    torch.manual_seed(0)
    layers: list = []
    for i, (a, b) in enumerate(zip(SEED_SIZES[:-1], SEED_SIZES[1:], strict=True)):
        linear = torch.nn.Linear(a, b)
        torch.nn.init.xavier_uniform_(linear.weight)
        torch.nn.init.zeros_(linear.bias)
        layers += [linear] + ([torch.nn.ReLU()] if i < len(SEED_SIZES) - 2 else [])
    return torch.nn.Sequential(*layers)


def _torch_cnn():
    import torch

    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3136, 1024),
        nn.ReLU(),
        nn.Linear(1024, 10),
    )


class TorchPeer:
    name = "PyTorch eager"

    def __init__(self, data, *, model: str = "mlp") -> None:
        import torch

        self.torch = torch
        self.model = _torch_mlp() if model == "mlp" else _torch_cnn()
        shape = (-1, 784) if model == "mlp" else (-1, 1, 28, 28)
        self.x = torch.from_numpy(data.train.images.reshape(shape))
        self.y = torch.from_numpy(data.train.labels.astype(np.int64))
        self.test_x = torch.from_numpy(data.test.images.reshape(shape))
        self.test_y = torch.from_numpy(data.test.labels.astype(np.int64))
        self.loss = torch.nn.CrossEntropyLoss()

    def _optimizer(self, name: str, lr: float):
        cls = self.torch.optim.Adam if name == "adam" else self.torch.optim.SGD
        return cls(self.model.parameters(), lr=lr)

    def steps(self, *, batch_size: int, optimizer: str, lr: float, count: int) -> float:
        """Seconds for ``count`` steps of a plain loop over shuffled batches (after a warm-up)."""
        opt = self._optimizer(optimizer, lr)
        n = len(self.y)

        def run(k: int) -> None:
            order = self.torch.randperm(n)
            for i in range(k):
                start = (i * batch_size) % n
                idx = order[start : start + batch_size]
                opt.zero_grad(set_to_none=True)
                self.loss(self.model(self.x[idx]), self.y[idx]).backward()
                opt.step()

        run(min(count, 20))
        return _timed(lambda: run(count))

    def full_batch_step(self, *, repeats: int) -> list[float]:
        opt = self._optimizer("adam", 1e-3)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            self.loss(self.model(self.x), self.y).backward()
            opt.step()

        step()
        return [_timed(step) for _ in range(repeats)]

    def test_accuracy(self) -> float:
        with self.torch.no_grad():
            return float((self.model(self.test_x).argmax(1) == self.test_y).float().mean())

    def time_to_test_accuracy(
        self, target: float, max_epochs: int, *, batch_size: int, lr: float
    ) -> tuple[float, int | None]:
        """As ``costhill_time_to_test_accuracy``; evaluation excluded."""
        opt = self._optimizer("adam", lr)
        n, seconds = len(self.y), 0.0
        steps = -(-n // batch_size)

        def epoch() -> None:
            order = self.torch.randperm(n)
            for i in range(steps):
                idx = order[i * batch_size : (i + 1) * batch_size]
                opt.zero_grad(set_to_none=True)
                self.loss(self.model(self.x[idx]), self.y[idx]).backward()
                opt.step()

        for e in range(1, max_epochs + 1):
            seconds += _timed(epoch)
            if self.test_accuracy() >= target:
                return seconds, e
        return seconds, None


# -- Keras 3 on TensorFlow ------------------------------------------------------------------------


class KerasPeer:
    name = "Keras fit"

    def __init__(self, data, *, model: str = "mlp") -> None:
        os.environ.setdefault("KERAS_BACKEND", "tensorflow")
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import keras

        self.keras = keras
        self.model_name = model
        shape = (-1, 784) if model == "mlp" else (-1, 28, 28, 1)
        self.x = data.train.images.reshape(shape)
        self.y = data.train.labels
        self.test_x = data.test.images.reshape(shape)
        self.test_y = data.test.labels

    def _layers(self) -> list:
        layers = self.keras.layers
        if self.model_name == "cnn":
            # fmnist_2c2d as costhill's ``cnn`` and ``_torch_cnn``; channels last, Keras's default.
            return [
                self.keras.Input((28, 28, 1)),
                layers.Conv2D(32, 5, padding="same", activation="relu"),
                layers.MaxPooling2D(2),
                layers.Conv2D(64, 5, padding="same", activation="relu"),
                layers.MaxPooling2D(2),
                layers.Flatten(),
                layers.Dense(1024, activation="relu"),
                layers.Dense(10),
            ]
        stack = [self.keras.Input((784,))]
        stack += [layers.Dense(width, activation="relu") for width in SEED_SIZES[1:-1]]
        return [*stack, layers.Dense(SEED_SIZES[-1])]

    def _model(self, optimizer: str, lr: float, steps_per_execution: int):
        keras = self.keras
        keras.utils.set_random_seed(0)
        model = keras.Sequential(self._layers())
        opt = (keras.optimizers.Adam if optimizer == "adam" else keras.optimizers.SGD)(lr)
        model.compile(
            optimizer=opt,
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            steps_per_execution=steps_per_execution,
        )
        return model

    def fitter(
        self,
        *,
        batch_size: int,
        optimizer: str,
        lr: float,
        steps_per_execution: int,
        examples: int | None = None,
    ) -> Callable[[], float]:
        """A timer of ``fit`` for one epoch over ``examples`` images; built and warmed up here.
        The warm-up call's seconds (Keras traces and builds its graph in it) are the timer's
        ``first_call``."""
        x, y = self.x[:examples], self.y[:examples]
        model = self._model(optimizer, lr, steps_per_execution)
        fit = lambda: model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=True, verbose=0)  # noqa: E731
        first_call = _timed(fit)

        def timer() -> float:
            return _timed(fit)

        timer.first_call = first_call  # type: ignore[attr-defined]
        return timer

    def epoch(self, *, repeats: int = 1, **fitter) -> list[float]:
        """Seconds of ``fit`` for one epoch (``fitter``'s arguments), after a warm-up epoch."""
        timer = self.fitter(**fitter)
        return [timer() for _ in range(repeats)]

    def full_batch_step(self, *, repeats: int) -> tuple[list[float], float]:
        """Seconds of ``repeats`` full-batch steps, and of the first (warm-up) call."""
        timer = self.fitter(
            batch_size=len(self.y), optimizer="adam", lr=1e-3, steps_per_execution=1
        )
        return [timer() for _ in range(repeats)], timer.first_call  # type: ignore[attr-defined]

    def time_to_test_accuracy(
        self,
        target: float,
        max_epochs: int,
        *,
        batch_size: int,
        lr: float,
        steps_per_execution: int,
    ) -> tuple[float, int | None]:
        """As ``costhill_time_to_test_accuracy``; evaluation excluded, while the first epoch
        includes Keras's tracing of its training function."""
        model = self._model("adam", lr, steps_per_execution)
        seconds = 0.0
        for e in range(1, max_epochs + 1):
            seconds += _timed(
                lambda: model.fit(
                    self.x, self.y, batch_size=batch_size, epochs=1, shuffle=True, verbose=0
                )
            )
            logits = model.predict(self.test_x, batch_size=2000, verbose=0)
            if float(np.mean(np.argmax(logits, 1) == self.test_y)) >= target:
                return seconds, e
        return seconds, None


# -- NumPy from scratch ---------------------------------------------------------------------------


class NumpyPeer:
    """The MLP written out in NumPy: forward, backward and the update by hand, as in a course."""

    name = "NumPy"

    def __init__(self, data) -> None:
        rng = np.random.default_rng(0)
        self.weights, self.biases = [], []
        for a, b in zip(SEED_SIZES[:-1], SEED_SIZES[1:], strict=True):
            limit = np.sqrt(6 / (a + b))
            self.weights.append(rng.uniform(-limit, limit, (a, b)).astype(np.float32))
            self.biases.append(np.zeros(b, np.float32))
        self.x = data.train.images.reshape(-1, 784)
        self.y = data.train.labels

    def _grads(self, x: np.ndarray, y: np.ndarray):
        activations = [x]
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = activations[-1] @ w + b
            activations.append(np.maximum(z, 0) if i < len(self.weights) - 1 else z)
        logits = activations[-1]
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        delta = probs
        delta[np.arange(len(y)), y] -= 1
        delta /= len(y)
        grads = []
        for i in range(len(self.weights) - 1, -1, -1):
            grads.append((activations[i].T @ delta, delta.sum(axis=0)))
            if i:  # no gradient is needed for the images
                delta = (delta @ self.weights[i].T) * (activations[i] > 0)
        return grads[::-1]

    def steps(self, *, batch_size: int, optimizer: str, lr: float, count: int) -> float:
        params = [p for pair in zip(self.weights, self.biases, strict=True) for p in pair]
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        b1, b2, eps = 0.9, 0.999, 1e-8
        n = len(self.y)

        def run() -> None:
            order = np.random.default_rng(1).permutation(n)
            for t in range(1, count + 1):
                start = ((t - 1) * batch_size) % n
                idx = order[start : start + batch_size]
                grads = [g for pair in self._grads(self.x[idx], self.y[idx]) for g in pair]
                if optimizer == "sgd":
                    for p, g in zip(params, grads, strict=True):
                        p -= lr * g
                    continue
                scale = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
                for p, g, mi, vi in zip(params, grads, m, v, strict=True):
                    mi *= b1
                    mi += (1 - b1) * g
                    vi *= b2
                    vi += (1 - b2) * g * g
                    p -= scale * mi / (np.sqrt(vi) + eps)

        return _timed(run)

    def full_batch_step(self, *, repeats: int) -> list[float]:
        return [
            self.steps(batch_size=len(self.y), optimizer="adam", lr=1e-3, count=1)
            for _ in range(repeats)
        ]
