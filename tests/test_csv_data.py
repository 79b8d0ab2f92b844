"""The Kaggle CSV form of the data (``fashion-mnist_train.csv``: a label column, then 784 pixel
columns), read as strictly as the IDX files (issue 15, item 7)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from costhill.data import load, read_csv_split
from costhill.errors import DataError


def _write_csv(path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    pixels = (np.asarray(images) * 255).round().astype(int).reshape(len(labels), -1)
    header = "label," + ",".join(f"pixel{i}" for i in range(1, 785))
    rows = [
        ",".join(map(str, [int(label), *row])) for label, row in zip(labels, pixels, strict=True)
    ]
    path.write_text("\n".join([header, *rows]) + "\n")


@pytest.fixture
def csv_dir(tmp_path, sample):
    folder = tmp_path / "kaggle"
    folder.mkdir()
    whole = load("fashion-mnist-sample", validation=0)
    _write_csv(folder / "fashion-mnist_train.csv", whole.train.images, whole.train.labels)
    _write_csv(folder / "fashion-mnist_test.csv", whole.test.images, whole.test.labels)
    return folder


def test_the_csv_form_loads_the_same_images_and_labels(csv_dir):
    idx = load("fashion-mnist-sample", validation=0)
    csv = load("fashion-mnist", data_dir=csv_dir, validation=0)
    assert np.array_equal(csv.train.images, idx.train.images)
    assert np.array_equal(csv.train.labels, idx.train.labels)
    assert np.array_equal(csv.test.labels, idx.test.labels)
    assert "Kaggle CSV form" in csv.verified and "0 of 4" in csv.verified  # not the full set


@pytest.mark.parametrize(
    "line,message",
    [
        (
            "3," + ",".join(["0"] * 10),
            ":2: expected 785 values (a label, then 784 pixels), found 11",
        ),
        ("3," + ",".join(["0"] * 783) + ",x", ":2: 'x' is not a whole number"),
        ("3," + ",".join(["0"] * 783) + ",256", ":2: pixel 256 out of range 0..255"),
        ("10," + ",".join(["0"] * 784), ":2: label 10 out of range 0..9"),
        ("3," + ",".join(["0"] * 783) + ",-1", ":2: pixel -1 out of range 0..255"),
    ],
)
def test_a_bad_csv_row_is_named_by_file_and_line(tmp_path, line, message):
    path = tmp_path / "fashion-mnist_train.csv"
    path.write_text("label," + ",".join(f"p{i}" for i in range(784)) + "\n" + line + "\n")
    with pytest.raises(DataError) as found:
        read_csv_split(path)
    assert str(found.value) == f"{path}{message}"


def test_an_empty_or_binary_csv_is_refused(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="no rows"):
        read_csv_split(empty)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DataError, match="cannot be read as a CSV file"):
        read_csv_split(binary)
