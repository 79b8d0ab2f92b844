"""The layout's rules that a test can check: what imports JAX, what the compile cache keys on,
and that the CLI names flags where the library names fields. (Layer arrows: `lint-imports`.)"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from costhill.config import ACTIVATION_NAMES, DATASET_NAMES, FIELDS, MODEL_NAMES, RunConfig
from costhill.engine.cache import OUTSIDE_THE_EPOCH, epoch_key


def _loads_jax(code: str) -> bool:
    done = subprocess.run(
        [sys.executable, "-c", f"import sys; {code}; print('jax' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip() == "True"


def test_importing_the_store_imports_no_jax():
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import costhill.store"],
        capture_output=True,
        text=True,
        check=True,
    )
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()]
    assert "costhill.store.db" in imported  # the listing is read
    assert not [name for name in imported if name.split(".")[0] in ("jax", "jaxlib", "optax")]


@pytest.mark.parametrize(
    "modules",
    [
        "costhill.records",
        "costhill.store",
        "costhill.results.compare, costhill.results.exports, costhill.results.plots",
        "costhill.results.tensorboard, costhill.results.mlflow, costhill.results.predictions",
        "costhill.cli, costhill.cli.train, costhill.cli.sweep, costhill.cli.runs",
    ],
)
def test_readers_and_the_cli_import_no_jax_at_import_time(modules):
    assert not _loads_jax(f"import {modules}")


def test_the_engine_does_import_jax():
    """The check above can fail: importing the engine loads JAX."""
    assert _loads_jax("import costhill.engine")


# A value other than the default for every config field the compiled epoch depends on.
CHANGED: dict[str, Any] = {
    "model": "logreg",
    "hidden": (50,),
    "activation": "tanh",
    "optimizer": "sgd",
    "lr": 0.5,
    "opt": (("b1", 0.8),),
    "schedule": "cosine",
    "batch_size": 32,
    "drop_last": True,
    "snapshots": 20,
}


def _key(
    config: RunConfig, *, num_train: int = 50_000, batch_size: int = 64, total_steps: int = 7820
) -> tuple[Any, ...]:
    return epoch_key([config], num_train=num_train, batch_size=batch_size, total_steps=total_steps)


def test_every_config_field_is_in_the_epoch_key_or_argued_out():
    assert set(OUTSIDE_THE_EPOCH) <= set(FIELDS)
    assert set(CHANGED) == set(FIELDS) - set(OUTSIDE_THE_EPOCH)


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_changing_a_field_that_shapes_the_epoch_changes_its_key(name):
    assert _key(RunConfig().replace(**{name: CHANGED[name]})) != _key(RunConfig())


@pytest.mark.parametrize(
    "changes",
    [{"seed": 5}, {"init": "he_normal"}, {"bias_init": "constant:value=0.1"}, {"epochs": 3}],
)
def test_seed_initializers_and_epochs_leave_a_constant_schedule_key_alone(changes):
    assert _key(RunConfig().replace(**changes)) == _key(RunConfig())


def test_derived_sizes_and_a_schedule_length_are_in_the_key():
    base = RunConfig()
    assert _key(base, num_train=49_000) != _key(base)
    assert _key(base, batch_size=32) != _key(base)
    cosine = base.replace(schedule="cosine")
    assert _key(cosine, total_steps=100) != _key(cosine)
    noisy = base.replace(optimizer="noisy_sgd")
    assert _key(noisy.replace(seed=1)) != _key(noisy)  # its noise key is closed over


def _injected_key(config: RunConfig) -> tuple[Any, ...]:
    return epoch_key([config], num_train=50_000, batch_size=64, total_steps=7820, inject=True)


@pytest.mark.parametrize(
    "changes", [{"lr": 0.1}, {"opt": {"b1": 0.8}, "lr": 0.2}, {"opt": {"b1": 0.5}}]
)
def test_values_carried_in_the_optimizer_state_leave_the_key_alone(changes):
    with_b1 = RunConfig().replace(opt={"b1": 0.9})
    base = with_b1 if "b1" in changes.get("opt", {}) else RunConfig()
    assert _injected_key(base.replace(**changes)) == _injected_key(base)
    assert _key(base.replace(**changes)) != _key(base)  # compiled in, each value its own


def test_which_hyperparameters_are_set_and_those_compiled_in_stay_in_the_key():
    base = RunConfig(optimizer="adafactor")
    assert _injected_key(base.replace(opt={"decay_rate": 0.7})) != _injected_key(base)
    sized = base.replace(opt={"min_dim_size_to_factor": 64})
    assert _injected_key(sized) != _injected_key(sized.replace(opt={"min_dim_size_to_factor": 32}))
    flagged = base.replace(opt={"multiply_by_parameter_scale": False})
    assert _injected_key(flagged) != _injected_key(
        flagged.replace(opt={"multiply_by_parameter_scale": True})
    )


def test_a_new_program_compiles_and_a_new_seed_or_learning_rate_does_not(sample):
    from costhill import train
    from costhill.engine import COMPILE_CACHE

    cfg = RunConfig(
        dataset="fashion-mnist-sample", validation=300, epochs=1, batch_size=120, model="logreg"
    )
    train(cfg, data=sample)
    before = COMPILE_CACHE.compilations["epoch"]
    train(cfg.replace(seed=9), data=sample)
    again = train(cfg.replace(lr=0.01, opt={"b2": 0.99}), data=sample)
    assert COMPILE_CACHE.compilations["epoch"] == before + 1  # b2 set: one new program
    assert again.versions["hyperparameters"] == "in the optimizer state"
    train(cfg.replace(lr=0.03, opt={"b2": 0.9}), data=sample)
    assert COMPILE_CACHE.compilations["epoch"] == before + 1
    cosine = train(cfg.replace(schedule="cosine"), data=sample)  # closes over its peak rate
    assert COMPILE_CACHE.compilations["epoch"] == before + 2
    assert cosine.versions["hyperparameters"] == "compiled in"


def test_the_cli_offers_exactly_the_librarys_choices():
    from costhill.data import DATASETS
    from costhill.models import ACTIVATIONS, MODELS

    assert tuple(DATASETS) == DATASET_NAMES
    assert tuple(ACTIVATIONS) == ACTIVATION_NAMES
    assert tuple(MODELS) == MODEL_NAMES


@pytest.mark.parametrize(
    "message,shown",
    [
        ("lr -1.0: the learning rate must be positive", "--lr -1.0: the learning rate"),
        ("flags: bias_init 'he': cannot", "flags: --bias-init 'he': cannot"),
        ("store x.db: no such store", "--store x.db: no such store"),
        ("overrides colour: unknown plan key", "--set colour: unknown plan key"),
        ("lr-demo.toml:5: lr: must be positive", "lr-demo.toml:5: lr: must be positive"),
        ("plan seed: epochs: must be a positive number", "plan seed: epochs: must be"),
        ("run 7: not in x.db", "run 7: not in x.db"),
    ],
)
def test_the_cli_names_the_flag_where_the_library_names_the_field(message, shown):
    from costhill.cli.options import as_flags

    assert as_flags(message).startswith(shown)


@pytest.mark.parametrize(
    "args",
    [
        ["compare", "--sweep", "hill"],
        ["compare", "hill"],  # a plan's name is read without the engine
        ["runs", "--json"],
        ["export", "--sweep", "hill"],
        ["show", "1"],
    ],
)
def test_commands_that_read_the_store_import_no_jax(args, tmp_path):
    import shutil
    from pathlib import Path

    store = tmp_path / "runs.db"
    shutil.copy(Path(__file__).parent / "data" / "runs.db", store)
    code = (
        "import sys; from click.testing import CliRunner; from costhill.cli import cli; "
        f"r = CliRunner().invoke(cli, {[*args, '--store', str(store)]!r}); "
        "assert r.exit_code == 0, r.output"
    )
    assert not _loads_jax(code)


def test_a_long_runs_listing_is_a_plain_aligned_table():
    from costhill.cli.runs import _plain_table

    text = _plain_table("t", ["id", "status"], [["1", "finished"], ["10", "running"]], ("status",))
    assert text.splitlines() == ["t", "id  status  ", " 1  finished", "10  running "]
