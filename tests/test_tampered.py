"""Files from elsewhere: a store truncated or with bytes overwritten, a truncated or fake image.
Every command that reads them answers, or prints one line naming the file; none shows a
traceback, and none writes to the damaged store. Parameters are stored as raw arrays and never
unpickled (costhill reads no pickle and no .npz: `export-params` only writes one)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from costhill import RunConfig, train
from costhill.store import Store

SRC = Path(__file__).parents[1] / "src" / "costhill"


@pytest.fixture(scope="module")
def good_store(tmp_path_factory, sample) -> Path:
    path = tmp_path_factory.mktemp("tampered") / "good.db"
    with Store(path) as store:
        for seed in (0, 1):
            config = RunConfig(
                dataset="fashion-mnist-sample", validation=300, model="logreg", epochs=2,
                batch_size=100, seed=seed, snapshots=2,
            )  # fmt: skip
            store.save(train(config, data=sample))
    return path


READERS = [("runs",), ("show", "1"), ("show", "2"), ("plot", "1", "--out", "{out}")]


def _read_everything(invoke, store: Path, tmp_path: Path) -> list[str]:
    """What each reading command printed as its error (an empty list: all answered)."""
    errors = []
    for command in READERS:
        args = [a.format(out=tmp_path / "costs.png") for a in command]
        result = invoke(*args, "--store", store)
        assert result.exit_code in (0, 2), result.output
        assert "Traceback" not in result.output + result.stderr
        if result.exit_code == 2:
            lines = [line for line in result.stderr.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
            errors.append(lines[0])
    return errors


def _no_pending_writes(store: Path) -> bool:
    """SQLite's read-only readers of a WAL store may leave an empty log; never one with pages."""
    log = Path(f"{store}-wal")
    return not log.exists() or log.stat().st_size == 0


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_a_truncated_store_is_named_and_left_as_it_is(invoke, good_store, tmp_path, keep):
    store = tmp_path / "cut.db"
    whole = good_store.read_bytes()
    store.write_bytes(whole[: int(len(whole) * keep)])
    before = store.read_bytes()
    errors = _read_everything(invoke, store, tmp_path)
    assert errors and all(str(store) in e for e in errors)
    assert store.read_bytes() == before and _no_pending_writes(store)


@pytest.mark.parametrize("seed", range(12))
def test_a_store_with_bytes_overwritten_answers_or_names_itself(invoke, good_store, tmp_path, seed):
    store = tmp_path / "flipped.db"
    shutil.copy(good_store, store)
    raw = bytearray(store.read_bytes())
    draw = random.Random(seed)
    start = draw.randrange(100, len(raw) - 64)  # past the header, which the truncation tests hit
    raw[start : start + 64] = draw.randbytes(64)
    store.write_bytes(bytes(raw))
    errors = _read_everything(invoke, store, tmp_path)
    assert all(str(store) in e for e in errors)
    assert store.read_bytes() == bytes(raw) and _no_pending_writes(store)


def test_a_truncated_image_is_named(invoke, good_store, tmp_path, sample):
    from PIL import Image

    picture = tmp_path / "shirt.png"
    Image.new("L", (64, 64), color=128).save(picture)
    cut = tmp_path / "cut.png"
    cut.write_bytes(picture.read_bytes()[:60])
    store = tmp_path / "copy.db"
    shutil.copy(good_store, store)
    result = invoke("predict", "1", "--image", cut, "--store", store)
    assert result.exit_code == 2
    assert result.stderr.strip().startswith(f"Error: --image {cut}: cannot be read as an image")


def test_parameters_are_never_unpickled():
    """No module reads a pickle: the store's arrays are raw bytes with their dtype and shape."""
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if any(
            word in path.read_text()
            for word in ("import pickle", "pickle.load", "allow_pickle=True", "np.load(")
        )
    ]
    assert offenders == []
