"""Checks on the full Fashion-MNIST. CI installs Debian's dataset-fashion-mnist, so these fail, not
skip, where it is missing: a green run must mean the numbers were checked on the real set."""

from __future__ import annotations

import pytest

from costhill import RunConfig, train
from costhill.data import full_data_available, load

pytestmark = pytest.mark.full_data


@pytest.fixture(scope="module")
def full():
    assert full_data_available(), (
        "the full Fashion-MNIST is missing: install Debian's dataset-fashion-mnist "
        "or run `costhill data fetch`"
    )
    return load("fashion-mnist", download=False)


def test_full_set_verifies_and_splits(full):
    assert full.verified == "SHA-256 of all 4 files matches"
    assert (len(full.train), len(full.validation), len(full.test)) == (50_000, 10_000, 10_000)


def test_adam_1e3_reaches_0875_test_accuracy_within_10_epochs(full):
    run = train(RunConfig(optimizer="adam", lr=1e-3, batch_size=64, epochs=10), data=full)
    best = max(e.test_accuracy for e in run.epochs)
    assert best >= 0.875, [round(e.test_accuracy, 4) for e in run.epochs]


def test_zeros_init_stays_at_chance_on_the_full_set(full):
    run = train(RunConfig(init="zeros", epochs=2, batch_size=64), data=full)
    assert run.epochs[-1].test_accuracy == pytest.approx(0.10, abs=0.005)
