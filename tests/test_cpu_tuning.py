"""XLA's compile options and thread count for costhill's CPU epochs, and their record with runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import jax
import pytest

from costhill import RunConfig, train
from costhill.engine import cpu_tuning
from costhill.store import load_run

BASE: dict[str, Any] = dict(dataset="fashion-mnist-sample", validation=300)
ORIGINAL_PJRT_NPROC = os.environ.get("PJRT_NPROC")
ONE_CORE_L2 = 1 << 20  # the project machine's; fixed here so the rule's table does not depend on
# the machine running the tests


def test_epoch_compiler_options_keep_nans_and_are_stored_with_the_run(sample):
    adaptive = cpu_tuning.epoch_compiler_options("adam")
    plain = cpu_tuning.epoch_compiler_options("sgd")
    for options in (adaptive, plain):
        assert options["xla_cpu_fast_math_honor_nans"] is True
        assert options["xla_cpu_fast_math_honor_infs"] is True
        assert options["xla_cpu_fast_math_honor_division"] is False
    assert "xla_cpu_prefer_vector_width" not in plain
    wide = adaptive.get("xla_cpu_prefer_vector_width") == 512
    assert wide == cpu_tuning._cpu_has_avx512()
    eigen = "xla_cpu_experimental_ynn_fusion_type"
    assert adaptive[eigen] == ""
    assert eigen not in cpu_tuning.epoch_compiler_options("adam", "cnn")
    run = train(RunConfig(**BASE, epochs=1, batch_size=100), data=sample)
    stored = run.versions["xla_options"]
    assert "xla_cpu_fast_math_honor_nans=True" in stored and f"{eigen}=''" in stored
    assert ("xla_cpu_prefer_vector_width=512" in stored) == wide
    assert run.versions["xla_cpu_threads"] == str(cpu_tuning.xla_threads_in_use())


def test_compile_drops_options_the_installed_xla_does_not_know():
    lowered = jax.jit(lambda x: x * 2.0).lower(1.0)
    asked = {"xla_cpu_enable_fast_math": True, "xla_cpu_no_such_option_here": True}
    compiled, used = cpu_tuning.compile_lowered(lowered, asked)
    assert used == {"xla_cpu_enable_fast_math": True}
    assert float(compiled(3.0)) == 6.0
    with pytest.raises(jax.errors.JaxRuntimeError):
        cpu_tuning.compile_lowered(lowered, {"xla_cpu_prefer_vector_width": "not a number"})


def test_parameter_bytes_of_dense_models_by_hand():
    seed = 784 * 200 + 200 + 200 * 100 + 100 + 100 * 30 + 30 + 30 * 10 + 10
    assert cpu_tuning.parameter_bytes(RunConfig()) == 4 * seed
    assert cpu_tuning.parameter_bytes(RunConfig(model="logreg")) == 4 * (784 * 10 + 10)
    assert cpu_tuning.parameter_bytes(RunConfig(hidden=(50,))) == 4 * (784 * 50 + 50 + 50 * 10 + 10)
    assert cpu_tuning.parameter_bytes(RunConfig(model="cnn")) is None


@pytest.mark.parametrize(
    "config,threads",
    [
        (dict(optimizer="sgd", batch_size=1), 1),
        (dict(optimizer="sgd", batch_size=8, schedule="cosine"), 1),
        (dict(optimizer="sgd", batch_size=1, model="logreg"), 1),
        (dict(optimizer="sgd", batch_size=16), None),  # enough work a step to share
        (dict(optimizer="sgd", batch_size="full"), None),
        (dict(optimizer="sgd", batch_size=1, opt=(("momentum", 0.9),)), None),
        (dict(optimizer="momentum", batch_size=1), None),
        (dict(optimizer="adam", batch_size=1), None),
        (dict(optimizer="sgd", batch_size=1, hidden=(1000, 500)), None),  # 5 MB: over one L2
        (dict(optimizer="sgd", batch_size=1, model="cnn"), None),  # not measured
    ],
)
def test_one_xla_thread_only_where_it_measured_faster(monkeypatch, config, threads):
    monkeypatch.setattr(cpu_tuning, "_l2_cache_bytes", lambda: ONE_CORE_L2)
    assert cpu_tuning.preferred_xla_threads([RunConfig(**config)]) == threads


def test_a_set_of_runs_gets_one_thread_only_if_every_run_prefers_it(monkeypatch):
    monkeypatch.setattr(cpu_tuning, "_l2_cache_bytes", lambda: ONE_CORE_L2)
    sgd = RunConfig(optimizer="sgd", batch_size=1)
    assert cpu_tuning.preferred_xla_threads([sgd, sgd]) == 1
    assert cpu_tuning.preferred_xla_threads([sgd, RunConfig(optimizer="adam")]) is None
    assert cpu_tuning.preferred_xla_threads([]) is None
    monkeypatch.setattr(cpu_tuning, "_l2_cache_bytes", lambda: None)  # cache size unknown
    assert cpu_tuning.preferred_xla_threads([sgd]) is None


def test_use_preferred_threads_sets_them_before_jax_starts_and_never_over_the_user(monkeypatch):
    monkeypatch.setattr(cpu_tuning, "_l2_cache_bytes", lambda: ONE_CORE_L2)
    sgd = [RunConfig(optimizer="sgd", batch_size=1)]
    # The whole environment is restored afterwards: a PJRT_NPROC left behind would give later
    # tests' worker processes one thread.
    with mock.patch.dict(os.environ):
        for name in ("PJRT_NPROC", "NPROC"):
            os.environ.pop(name, None)
        # This test process has started JAX already: too late to change anything.
        assert cpu_tuning.use_preferred_xla_threads(sgd) is None
        assert "PJRT_NPROC" not in os.environ
        monkeypatch.setattr(cpu_tuning, "_backends_started", lambda: False)
        assert cpu_tuning.use_preferred_xla_threads([RunConfig(optimizer="adam")]) is None
        assert "PJRT_NPROC" not in os.environ
        assert cpu_tuning.use_preferred_xla_threads(sgd) == 1
        assert os.environ["PJRT_NPROC"] == "1"
        os.environ["PJRT_NPROC"] = "2"
        assert cpu_tuning.use_preferred_xla_threads(sgd) is None
        assert os.environ["PJRT_NPROC"] == "2"
    assert os.environ.get("PJRT_NPROC") == ORIGINAL_PJRT_NPROC


def _train_in_a_fresh_process(store: Path, env: dict[str, str]) -> dict[str, Any]:
    args = ["train", "--dataset", "fashion-mnist-sample", "--optimizer", "sgd", "--lr", "0.01"]
    args += ["--batch-size", "1", "--epochs", "1", "--json", "--quiet", "--store", str(store)]
    done = subprocess.run(
        [sys.executable, "-m", "costhill", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    run = load_run(json.loads(done.stdout)["run_id"], store)
    return {"threads": run.versions["xla_cpu_threads"], "cost": run.epochs[-1].train_cost}


def _xla_default_threads_in_a_fresh_process(env: dict[str, str]) -> str:
    # Counted in a process of its own: this one may not have started JAX yet (when only slow
    # tests run), and may run under a PJRT_NPROC of its own.
    script = (
        "import jax.numpy as jnp; from costhill.engine import cpu_tuning; "
        "jnp.ones(1).block_until_ready(); print(cpu_tuning.xla_threads_in_use())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.slow  # two CLI processes of batch-1 epochs: about 18 s
def test_cli_trains_batch1_sgd_on_the_threads_chosen_and_the_numbers_do_not_change(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PJRT_NPROC", "NPROC")}
    chosen = _train_in_a_fresh_process(tmp_path / "chosen.db", env)
    expected = cpu_tuning.preferred_xla_threads([RunConfig(optimizer="sgd", batch_size=1)])
    assert chosen["threads"] == str(expected or _xla_default_threads_in_a_fresh_process(env))
    users = _train_in_a_fresh_process(tmp_path / "users.db", {**env, "PJRT_NPROC": "2"})
    assert users["threads"] == "2"
    assert users["cost"] == chosen["cost"]
