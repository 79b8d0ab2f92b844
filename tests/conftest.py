"""Shared fixtures: the shipped sample, a fresh store, and an in-process CLI runner."""

from __future__ import annotations

from pathlib import Path

import pytest

# The environment every test runs in (JAX on the CPU, no compilation cache on disk) is set in the
# repository's root conftest.py, so that the doctests under src/ get it too.

SAMPLE_DIR = Path(__file__).parents[1] / "src" / "costhill" / "samples" / "fashion-mnist-sample"


@pytest.fixture(scope="session")
def sample():
    from costhill.data import load

    return load("fashion-mnist-sample", validation=300)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


@pytest.fixture
def invoke(monkeypatch, tmp_path):
    """Run the CLI in-process; returns click's Result (exit_code, output, stderr)."""
    from click.testing import CliRunner

    from costhill.cli import cli

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return run


@pytest.fixture
def sample_copy(tmp_path: Path) -> Path:
    """A writable copy of the sample's four files, for tests that break them."""
    target = tmp_path / "data"
    target.mkdir()
    for f in SAMPLE_DIR.glob("*.gz"):
        (target / f.name).write_bytes(f.read_bytes())
    return target
