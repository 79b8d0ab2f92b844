"""Bad input, fuzzed (issue 15, item 6): whatever bytes or text reach the IDX reader, the plan
parser, the initializer specs and the --opt/--set/--batch-size/--at parsers, they raise only
costhill's own errors (one clear line at the CLI), never a Python exception of another kind."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from costhill.data import IMAGE_MAGIC, LABEL_MAGIC, parse_idx, read_idx_bytes
from costhill.errors import CosthillError
from costhill.initializers import make_initializer, parse_init
from costhill.optimizers import check_hyperparameters, parse_schedule
from costhill.specs import parse_batch_size, parse_budget, parse_pair, parse_set, parse_spec
from costhill.sweeps import parse_plan

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_ours(action) -> None:
    try:
        action()
    except CosthillError:
        pass


def _idx_header(magic: int, dims: list[int]) -> bytes:
    return struct.pack(f">I{len(dims)}I", magic, *dims)


idx_bytes = st.one_of(
    st.binary(max_size=64),
    st.builds(
        lambda magic, dims, body: _idx_header(magic, dims) + body,
        st.sampled_from([IMAGE_MAGIC, LABEL_MAGIC, 0x00000802, 0, 0xFFFFFFFF]),
        st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=3),
        st.binary(max_size=64),
    ),
    st.builds(
        lambda n, body: _idx_header(IMAGE_MAGIC, [n, 28, 28]) + body,
        st.integers(0, 3),
        st.binary(max_size=3 * 784 + 5),
    ),
)


@FUZZ
@given(data=idx_bytes, images=st.booleans())
def test_the_idx_parser_raises_only_data_errors(data, images):
    magic = IMAGE_MAGIC if images else LABEL_MAGIC
    _only_ours(lambda: parse_idx(data, path=Path("fuzz"), expect_magic=magic))


@FUZZ
@given(data=st.binary(max_size=200), wrap=st.sampled_from(["raw", "gzip", "cut gzip"]))
def test_reading_an_idx_file_raises_only_data_errors(tmp_path_factory, data, wrap):
    path = tmp_path_factory.mktemp("idx") / "file.gz"
    if wrap == "gzip":
        data = gzip.compress(data)
    elif wrap == "cut gzip":
        data = gzip.compress(data)[: max(2, len(data) // 2)]
    path.write_bytes(data)
    _only_ours(lambda: parse_idx(read_idx_bytes(path), path=path, expect_magic=LABEL_MAGIC))


toml_like = st.text(
    alphabet=st.sampled_from(list('abcdefghijklmnopqrstuvwxyz_.=[]{}",0123456789 -\n#')),
    max_size=120,
)
plan_lines = st.lists(
    st.sampled_from(
        [
            'name = "f"',
            "epochs = 2",
            "epochs = 0",
            "steps = -1",
            "seconds = 1e9",
            "seeds = 3",
            'seeds = ["a"]',
            'search = "random"',
            "trials = 0",
            "target = 2",
            "[axes]",
            'init = ["zeros", "glorot"]',
            "batch_size = [0, 64]",
            'batch_size = ["full"]',
            "[[axes.optimizer]]",
            'name = "adam"',
            'name = "nope"',
            "lr = {log = [1e-4, 1]}",
            "lr = {log = [0, 1], num = 3}",
            "b1 = [0.9]",
            "beta = [1]",
            "colour = 1",
            'model = "cnn"',
            'activation = "swish"',
            "hidden = [0]",
            "snapshots = -1",
        ]
    ),
    max_size=10,
)


@FUZZ
@given(text=st.one_of(toml_like, plan_lines.map("\n".join)))
def test_the_plan_parser_raises_only_config_errors(text):
    _only_ours(lambda: parse_plan(text, source="fuzz.toml"))


TUNED = (
    'name = "f"\nepochs = 2\nsearch = "tpe"\ntrials = 2\nprune = "asha"\n'
    "[axes]\nlr = {log = [1e-3, 1]}\n"
)
override_keys = st.sampled_from(
    ["search", "prune", "search.seed", "search.startup", "search.sampler", "search.", "search.x.y"]
    + ["prune.rule", "prune.min_epochs", "prune.metric", "prune.reduction", "axes.lr", "epochs"]
)
override_values = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 5), st.floats(allow_nan=True), st.text(max_size=8)
)


@FUZZ
@given(
    text=st.sampled_from([TUNED, 'name = "g"\nepochs = 1\n[axes]\nlr = [0.1]\n']),
    overrides=st.dictionaries(
        override_keys, override_values | st.lists(override_values), max_size=4
    ),
)
def test_overrides_of_a_plans_tables_raise_only_config_errors(text, overrides):
    _only_ours(lambda: parse_plan(text, source="fuzz.toml", overrides=overrides))


@FUZZ
@given(spec=st.text(max_size=40), for_bias=st.booleans())
def test_initializer_specs_raise_only_config_errors(spec, for_bias):
    _only_ours(lambda: make_initializer(parse_init(spec), for_bias=for_bias))


@FUZZ
@given(text=st.text(max_size=40))
def test_the_small_parsers_raise_only_config_errors(text):
    for parse in (
        lambda: parse_pair(text, what="opt"),
        lambda: parse_spec(text, what="schedule"),
        lambda: parse_schedule(text),
        lambda: parse_set((text,)),
        lambda: parse_batch_size(text),
        lambda: parse_budget(text),
    ):
        _only_ours(parse)


@FUZZ
@given(
    name=st.sampled_from(["adam", "sgd", "momentum", "rmsprop", "lion", "nope"]),
    options=st.dictionaries(
        st.text(max_size=8), st.one_of(st.floats(allow_nan=True), st.booleans(), st.none())
    ),
)
def test_optimizer_hyperparameters_raise_only_config_errors(name, options):
    _only_ours(lambda: check_hyperparameters(name, options))


ATHERIS_RUNS = {"idx": 100_000, "plan": 20_000, "init": 50_000, "small": 50_000}
TARGETS = Path(__file__).parent / "fuzz" / "targets.py"
# A fixed seed, so a run is repeatable; no memory limit of libFuzzer's own (2 GB by default,
# which the process with JAX loaded was seen to pass on one CI machine before any input ran).
LIBFUZZER_FLAGS = ("-seed=1", "-rss_limit_mb=0")
SEEDS = Path(__file__).parents[1] / "src" / "costhill"


@pytest.mark.parametrize("target", sorted(ATHERIS_RUNS))
def test_atheris_finds_no_crash(target, tmp_path):
    """libFuzzer, guided by coverage of costhill's modules, from the bundled plans and the
    sample's files as seeds: any exception but costhill's own fails with the input it found."""
    pytest.importorskip("atheris", reason="atheris installs on Linux x86_64 CPython only")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    seeds = {"plan": SEEDS.glob("plans/*.toml"), "idx": SEEDS.glob("samples/*/*labels*")}
    for seed in seeds.get(target, []):
        data = seed.read_bytes()
        (corpus / seed.name).write_bytes(gzip.decompress(data) if seed.suffix == ".gz" else data)
    result = subprocess.run(
        [
            sys.executable,
            str(TARGETS),
            target,
            *LIBFUZZER_FLAGS,
            f"-runs={ATHERIS_RUNS[target]}",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,  # where libFuzzer writes a crash-* file
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    found = [line for line in result.stderr.splitlines() if not line.startswith("#")]
    assert result.returncode == 0, "\n".join(found[-40:])
    assert f"Done {ATHERIS_RUNS[target]} runs" in result.stderr
