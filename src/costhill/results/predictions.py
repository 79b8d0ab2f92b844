"""What a stored run says about images: class probabilities from its final parameters.

    costhill predict 1 --index 0 --index 42

This is the one part of ``results`` that computes with JAX (a forward pass); it imports it inside
the functions that need it, so that reading the rest of the results costs no JAX import.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import dataset_info, load
from ..errors import ConfigError, StoreError
from ..records import Run, unflatten_params


@dataclass(frozen=True)
class Prediction:
    """One image's predicted class, with its probability and (for a test image) the truth."""

    where: str  # the test index, or the name of the image given
    predicted: str
    probability: float
    label: str | None

    @property
    def correct(self) -> bool | None:
        return None if self.label is None else self.predicted == self.label


def probabilities(run: Run, images: np.ndarray) -> np.ndarray:
    """Softmax class probabilities of ``images`` (n, 28, 28) under the run's final parameters."""
    import jax

    from ..models import batched_logits, make_model

    if not run.params:
        raise StoreError(f"run {run.run_id}: has no stored parameters (status {run.status})")
    cfg = run.config
    model = make_model(cfg.model, hidden=cfg.hidden, activation=cfg.activation)
    params = unflatten_params(run.params)
    logits = batched_logits(model, params, jax.numpy.asarray(images))
    return np.asarray(jax.nn.softmax(logits, axis=-1))


def predict(
    run: Run,
    *,
    data_dir: str | None = None,
    indices: list[int] | None = None,
    count: int = 1,
    seed: int | None = None,
    image: np.ndarray | None = None,
) -> list[Prediction]:
    """Predictions for test images (``indices``, else ``count`` drawn with ``seed``) or for one
    ``image`` given as a (28, 28) array in [0, 1]."""
    cfg = run.config
    names = dataset_info(cfg.dataset).class_names
    labels: list[int | None]
    if image is not None:
        images, labels, shown = image[None], [None], ["image"]
    else:
        test = load(cfg.dataset, data_dir=data_dir, validation=0).test
        if indices is None:
            indices = list(np.random.default_rng(seed).choice(len(test), count, replace=False))
        for i in indices:
            if not 0 <= i < len(test):
                raise ConfigError(f"index {i}: the test set has indices 0..{len(test) - 1}")
        images = test.images[indices]
        labels = [int(label) for label in test.labels[indices]]
        shown = [str(i) for i in indices]
    probs = probabilities(run, images)
    return [
        Prediction(
            where=where,
            predicted=names[int(np.argmax(p))],
            probability=float(np.max(p)),
            label=None if label is None else names[label],
        )
        for where, p, label in zip(shown, probs, labels, strict=True)
    ]


@dataclass(frozen=True)
class TestSetPredictions:
    """A run's predicted class for every test image, with the truth and the class names."""

    images: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray
    names: list[str]

    def confusion(self) -> np.ndarray:
        """Counts of (true class, predicted class)."""
        counts = np.zeros((len(self.names), len(self.names)), int)
        np.add.at(counts, (self.labels, self.predicted), 1)
        return counts

    def wrong(self, limit: int) -> np.ndarray:
        """Indices of the first ``limit`` misclassified test images."""
        return np.flatnonzero(self.predicted != self.labels)[:limit]


def predict_test_set(run: Run, *, data_dir: str | None = None) -> TestSetPredictions:
    """The run's predictions over its dataset's whole test split."""
    test = load(run.config.dataset, data_dir=data_dir, validation=0).test
    predicted = np.argmax(probabilities(run, test.images), axis=1)
    names = list(dataset_info(run.config.dataset).class_names)
    return TestSetPredictions(test.images, test.labels, predicted, names)
