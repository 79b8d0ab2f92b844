"""The IDX loader: verification, every broken-file path, sources, download, the sample."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import struct
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from costhill import data
from costhill.download import Retry
from costhill.errors import DataError

_SHIPPED = data.DATASETS["fashion-mnist-sample"].shipped_dir
assert _SHIPPED is not None
SAMPLE_DIR: Path = _SHIPPED


def _rewrite(path: Path, transform) -> None:
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(transform(raw)))


def test_sample_is_balanced_real_and_verified(sample):
    assert sample.verified == "SHA-256 of all 4 files matches"
    assert len(sample.train) + len(sample.validation) == 2000
    assert len(sample.test) == 500
    assert np.bincount(sample.test.labels, minlength=10).tolist() == [50] * 10
    assert sample.train.images.dtype == np.float32
    assert 0.0 <= sample.train.images.min() and sample.train.images.max() <= 1.0
    assert sample.train.images.shape[1:] == (28, 28)


def test_validation_split_is_seeded_and_disjoint():
    a = data.load("fashion-mnist-sample", validation=400, split_seed=1)
    b = data.load("fashion-mnist-sample", validation=400, split_seed=1)
    c = data.load("fashion-mnist-sample", validation=400, split_seed=2)
    assert np.array_equal(a.validation.images, b.validation.images)
    assert not np.array_equal(a.validation.images, c.validation.images)
    # Held-out images are not in the training split (compare as byte strings).
    train_rows = {row.tobytes() for row in a.train.images}
    assert not any(row.tobytes() in train_rows for row in a.validation.images[:50])
    zero = data.load("fashion-mnist-sample", validation=0)
    assert len(zero.validation) == 0 and len(zero.train) == 2000


@pytest.mark.parametrize("validation", [-1, 2000, 5000])
def test_validation_out_of_range_is_named(validation):
    with pytest.raises(DataError, match=f"validation {validation}"):
        data.load("fashion-mnist-sample", validation=validation)


def _header(magic: int, *dims: int) -> bytes:
    return struct.pack(f">I{len(dims)}I", magic, *dims)


BROKEN = {
    "truncated": (
        "train-images-idx3-ubyte.gz",
        lambda raw: raw[:-100],
        "truncated",
    ),
    "wrong magic": (
        "train-labels-idx1-ubyte.gz",
        lambda raw: struct.pack(">I", 0x00000803) + raw[4:],
        "wrong magic number",
    ),
    "wrong dimensions": (
        "t10k-images-idx3-ubyte.gz",
        lambda raw: _header(0x803, 500, 32, 32) + raw[16:],
        "wrong image dimensions 32x32",
    ),
    "label out of range": (
        "t10k-labels-idx1-ubyte.gz",
        lambda raw: raw[:8] + bytes([12]) + raw[9:],
        "label out of range",
    ),
    "counts disagree": (
        "t10k-labels-idx1-ubyte.gz",
        lambda raw: _header(0x801, 499) + raw[8:-1],
        "counts disagree",
    ),
}


@pytest.mark.parametrize("defect", BROKEN)
def test_broken_files_are_named_with_their_defect(sample_copy, defect):
    name, transform, message = BROKEN[defect]
    _rewrite(sample_copy / name, transform)
    info = data.DATASETS["fashion-mnist-sample"]
    unchecked = data.DatasetInfo(
        name="t",
        class_names=info.class_names,
        sha256=dict.fromkeys(data.SPLIT_FILES),
        default_validation=100,
    )
    with pytest.raises(DataError, match=message) as err:
        data.read_directory(sample_copy, unchecked)
    assert str(sample_copy) in str(err.value)


def test_checksum_mismatch_names_the_file(sample_copy):
    _rewrite(sample_copy / "t10k-labels-idx1-ubyte.gz", lambda raw: raw[:8] + bytes([3]) + raw[9:])
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: checksum mismatch"):
        data.read_directory(sample_copy, data.DATASETS["fashion-mnist-sample"])


def test_missing_file_is_named(sample_copy):
    (sample_copy / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"missing file\(s\) train-labels-idx1-ubyte"):
        data.locate("fashion-mnist", sample_copy)


def test_raw_and_gzip_files_read_alike(sample_copy):
    gz = sample_copy / "t10k-labels-idx1-ubyte.gz"
    raw = sample_copy / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress(gz.read_bytes()))
    from_gz = data.parse_idx(data.read_idx_bytes(gz), path=gz, expect_magic=data.LABEL_MAGIC)
    from_raw = data.parse_idx(data.read_idx_bytes(raw), path=raw, expect_magic=data.LABEL_MAGIC)
    assert np.array_equal(from_gz, from_raw)


def test_corrupt_gzip_is_named(tmp_path):
    bad = tmp_path / "x.gz"
    bad.write_bytes(gzip.compress(bytes(range(256)) * 40)[:-12])
    with pytest.raises(DataError, match="x.gz: truncated or corrupt gzip"):
        data.read_idx_bytes(bad)


def test_search_order_env_then_cache_then_system(monkeypatch, tmp_path, sample_copy):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("COSTHILL_DATA", str(sample_copy))
    assert data.locate("fashion-mnist", download=False) == ("$COSTHILL_DATA", sample_copy)
    monkeypatch.delenv("COSTHILL_DATA")
    cache = data.cache_dir("fashion-mnist")
    cache.mkdir(parents=True)
    for f in sample_copy.iterdir():
        (cache / f.name).write_bytes(f.read_bytes())
    assert data.locate("fashion-mnist", download=False) == ("user cache", cache)


def test_nothing_found_says_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setitem(
        data.DATASETS,
        "mnist",
        data.DatasetInfo(
            name="mnist",
            class_names=data.FASHION_CLASSES,
            sha256=dict.fromkeys(data.SPLIT_FILES),
            default_validation=10,
            mirror=None,
        ),
    )
    with pytest.raises(DataError, match="not found. Looked in user cache"):
        data.locate("mnist")


NO_WAIT = Retry(attempts=2, backoff=0.0, timeout=2.0)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def mirror(tmp_path):
    """A static file server on 127.0.0.1 holding a copy of the sample's files."""
    root = tmp_path / "mirror"
    root.mkdir()
    for f in SAMPLE_DIR.glob("*.gz"):
        (root / f.name).write_bytes(f.read_bytes())
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _sample_as(name: str, monkeypatch) -> None:
    sample = data.DATASETS["fashion-mnist-sample"]
    monkeypatch.setitem(
        data.DATASETS,
        name,
        data.DatasetInfo(
            name=name,
            class_names=sample.class_names,
            sha256=sample.sha256,
            default_validation=100,
            mirror="http://127.0.0.1:9/",
        ),
    )


def test_download_verifies_then_renames(monkeypatch, tmp_path, mirror):
    root, url = mirror
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _sample_as("served", monkeypatch)
    seen = []
    target = data.fetch("served", mirror=url, progress=lambda n, d, t: seen.append((n, d, t)))
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in root.iterdir())
    assert seen and seen[-1][1] == seen[-1][2]
    assert data.load("served").verified == "SHA-256 of all 4 files matches"


def test_bad_download_leaves_nothing_in_the_cache(monkeypatch, tmp_path, mirror):
    root, url = mirror
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _sample_as("served", monkeypatch)
    _rewrite(root / "t10k-images-idx3-ubyte.gz", lambda raw: raw[:-1] + b"\x01")
    with pytest.raises(DataError, match="checksum mismatch after download"):
        data.fetch("served", mirror=url, retry=NO_WAIT, sleep=lambda _: None)
    names = [p.name for p in data.cache_dir("served").iterdir()]
    assert "t10k-images-idx3-ubyte.gz" not in names
    assert not [n for n in names if n.endswith(".part")]


def test_unreachable_mirror_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _sample_as("served", monkeypatch)
    with pytest.raises(DataError, match="download failed"):
        data.fetch("served", mirror="http://127.0.0.1:9/", retry=NO_WAIT, sleep=lambda _: None)


def test_shipped_checksums_match_the_files():
    info = data.DATASETS["fashion-mnist-sample"]
    for key, stem in data.SPLIT_FILES.items():
        raw = gzip.decompress((SAMPLE_DIR / f"{stem}.gz").read_bytes())
        assert hashlib.sha256(raw).hexdigest() == info.sha256[key]
