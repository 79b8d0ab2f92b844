"""Fashion-MNIST (and MNIST) in IDX format: find, verify, download, load and split.

Where the data comes from, in order: ``--data DIR``, ``$COSTHILL_DATA``, the user cache
(``~/.cache/costhill/<dataset>``), Debian's ``dataset-fashion-mnist`` package
(``/usr/share/datasets/fashion-mnist``), then a download into the cache. Each file is checked for
structure (magic number, dimensions, counts, label range) and, where the checksum is known, by the
SHA-256 of its decompressed bytes, because the gzip wrappers differ between mirrors.

Exercise it with ``costhill data`` (where was it found, how big, does it verify).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import RunConfig
from .download import DEFAULT_RETRY, ProgressFn, Retry, download
from .errors import DataError
from .specs import lookup

IMAGE_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
LABEL_MAGIC = 0x00000801  # unsigned byte, 1 dimension
NUM_CLASSES = 10
SPLIT_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
_SAMPLES_DIR = Path(__file__).parent / "samples"


@dataclass(frozen=True)
class DatasetInfo:
    """What costhill knows about one dataset: its files' checksums and where to find it."""

    name: str
    class_names: tuple[str, ...]
    # SHA-256 of each file's decompressed bytes, keyed by SPLIT_FILES key; None: not known.
    sha256: dict[str, str | None]
    default_validation: int
    mirror: str | None = None
    system_dirs: tuple[Path, ...] = ()
    shipped_dir: Path | None = None
    license_note: str = ""
    expected_counts: dict[str, int] = field(default_factory=dict)


FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

DATASETS: dict[str, DatasetInfo] = {
    "fashion-mnist": DatasetInfo(
        name="fashion-mnist",
        class_names=FASHION_CLASSES,
        # From the issue that specified the loader; they match Debian's dataset-fashion-mnist.
        sha256={
            "train_images": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train_labels": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "test_images": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "test_labels": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        default_validation=10_000,
        mirror="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
        license_note="Fashion-MNIST, Zalando Research, MIT License.",
        expected_counts={"train": 60_000, "test": 10_000},
    ),
    "mnist": DatasetInfo(
        name="mnist",
        class_names=tuple(str(d) for d in range(10)),
        # No checksum of the decompressed files was given to us: MNIST is checked by structure.
        sha256=dict.fromkeys(SPLIT_FILES),
        default_validation=10_000,
        mirror="https://ossci-datasets.s3.amazonaws.com/mnist/",
        license_note="MNIST, Yann LeCun and Corinna Cortes, CC BY-SA 3.0.",
        expected_counts={"train": 60_000, "test": 10_000},
    ),
    "fashion-mnist-sample": DatasetInfo(
        name="fashion-mnist-sample",
        class_names=FASHION_CLASSES,
        sha256={
            "train_images": "a724cd72799a6b1c3a81c4263865a75a73bb6473673b3394e34adf222930f19e",
            "train_labels": "4738fd437c0f8d6498ae7f6f5c86f1cc3c878d4116ff169fc5635bd6847899cc",
            "test_images": "8fdf02ada67d92f4db5ba3c2f6c5b1cc6186ba6e0efd4914661e4389e103b81e",
            "test_labels": "9c71808b3a0ebfc091442c0009a7aa35be2d9622bf6aaf6891ce9a0088e96c07",
        },
        default_validation=500,
        shipped_dir=_SAMPLES_DIR / "fashion-mnist-sample",
        license_note=(
            "A balanced cut of Fashion-MNIST (200 training and 50 test images per class), "
            "Zalando Research, MIT License."
        ),
        expected_counts={"train": 2_000, "test": 500},
    ),
}


@dataclass(frozen=True)
class Split:
    """Images as float32 in [0, 1], shape (n, 28, 28); labels as int32, shape (n,)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class Dataset:
    """Train, validation and test splits, and where they came from."""

    name: str
    train: Split
    validation: Split
    test: Split
    source: str
    verified: str
    class_names: tuple[str, ...]

    def describe(self) -> dict[str, object]:
        return {
            "dataset": self.name,
            "source": self.source,
            "verified": self.verified,
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
        }


def dataset_info(name: str) -> DatasetInfo:
    return lookup(DATASETS, name, what="dataset", error=DataError)


def _find_file(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def read_idx_bytes(path: Path) -> bytes:
    """The decompressed bytes of an IDX file, gzip or raw (told apart by the gzip magic)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{path}: truncated or corrupt gzip data ({err})") from None
    return raw


def parse_idx(data: bytes, *, path: Path, expect_magic: int) -> np.ndarray:
    """Parse IDX bytes into a uint8 array, checking magic, dimensions and length."""
    if len(data) < 8:
        raise DataError(f"{path}: truncated: {len(data)} bytes, shorter than an IDX header")
    (magic,) = struct.unpack(">I", data[:4])
    if magic != expect_magic:
        raise DataError(
            f"{path}: wrong magic number 0x{magic:08x}, expected 0x{expect_magic:08x} "
            f"({'images' if expect_magic == IMAGE_MAGIC else 'labels'} of unsigned bytes)"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated inside the header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if ndim == 3 and dims[1:] != (28, 28):
        raise DataError(f"{path}: wrong image dimensions {dims[1]}x{dims[2]}, expected 28x28")
    expected = int(np.prod(dims, dtype=np.int64))
    body = len(data) - header
    if body < expected:
        raise DataError(
            f"{path}: truncated: header promises {expected} bytes of data, file has {body}"
        )
    if body > expected:
        raise DataError(f"{path}: {body - expected} trailing bytes after the data")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


@dataclass(frozen=True)
class RawSplits:
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    verified: str


def csv_files(directory: Path, info: DatasetInfo) -> dict[str, Path]:
    """The Kaggle CSV form of a dataset (``fashion-mnist_train.csv``, ``fashion-mnist_test.csv``:
    a label column, then 784 pixel columns), where both files are in ``directory``."""
    found = {split: directory / f"{info.name}_{split}.csv" for split in ("train", "test")}
    return found if all(p.is_file() for p in found.values()) else {}


def read_csv_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 28, 28) and labels of one Kaggle CSV file, checked as strictly as an IDX file:
    785 whole numbers a row, labels 0..9, pixels 0..255; an error names the file and line."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot be read as a CSV file ({err})") from None
    lines = text.splitlines()
    header = 1 if lines and lines[0].startswith("label") else 0
    rows = np.zeros((len(lines) - header, 785), dtype=np.int64)
    for number, line in enumerate(lines[header:], start=header + 1):
        fields = line.split(",")
        if len(fields) != 785:
            raise DataError(
                f"{path}:{number}: expected 785 values (a label, then 784 pixels), found "
                f"{len(fields)}"
            )
        try:
            rows[number - header - 1] = [int(v) for v in fields]
        except ValueError:
            bad = next(v for v in fields if not v.strip().lstrip("-").isdigit())
            raise DataError(f"{path}:{number}: {bad!r} is not a whole number") from None
    if not len(rows):
        raise DataError(f"{path}: no rows")
    labels, pixels = rows[:, 0], rows[:, 1:]
    for name, values, high in ((("label", rows[:, :1], NUM_CLASSES - 1)), ("pixel", pixels, 255)):
        wrong = np.argwhere((values < 0) | (values > high))
        if len(wrong):
            row, column = (int(i) for i in wrong[0])
            raise DataError(
                f"{path}:{row + header + 1}: {name} {int(values[row, column])} out of range "
                f"0..{high}"
            )
    return pixels.astype(np.uint8).reshape(-1, 28, 28), labels.astype(np.uint8)


def _read_csv_directory(files: dict[str, Path], info: DatasetInfo) -> RawSplits:
    arrays: dict[str, np.ndarray] = {}
    matched = 0
    for split, path in files.items():
        images, labels = read_csv_split(path)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
        # The same bytes an IDX file would hold, so the official checksums still apply.
        for key, array, magic in (
            (f"{split}_images", images, IMAGE_MAGIC),
            (f"{split}_labels", labels, LABEL_MAGIC),
        ):
            header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
            expected = info.sha256.get(key)
            matched += expected is not None and (
                hashlib.sha256(header + array.tobytes()).hexdigest() == expected
            )
    verified = (
        "Kaggle CSV form; its content matches the SHA-256 of all 4 official IDX files"
        if matched == len(SPLIT_FILES)
        else f"Kaggle CSV form, structure checked; content matches {matched} of "
        f"{len(SPLIT_FILES)} official checksums"
    )
    return RawSplits(**arrays, verified=verified)


def read_directory(directory: Path, info: DatasetInfo) -> RawSplits:
    """Read and verify the four IDX files of ``info`` in ``directory`` (or, where they are
    absent, its Kaggle CSV form)."""
    if not _has_idx_files(directory) and csv_files(directory, info):
        return _read_csv_directory(csv_files(directory, info), info)
    arrays: dict[str, np.ndarray] = {}
    checked = 0
    for key, stem in SPLIT_FILES.items():
        path = _find_file(directory, stem)
        if path is None:
            raise DataError(f"{directory / stem}[.gz]: missing file")
        data = read_idx_bytes(path)
        expected_sha = info.sha256.get(key)
        if expected_sha is not None:
            actual = hashlib.sha256(data).hexdigest()
            if actual != expected_sha:
                raise DataError(
                    f"{path}: checksum mismatch: SHA-256 of the decompressed bytes is "
                    f"{actual}, expected {expected_sha}"
                )
            checked += 1
        magic = IMAGE_MAGIC if key.endswith("images") else LABEL_MAGIC
        arrays[key] = parse_idx(data, path=path, expect_magic=magic)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{directory}: counts disagree: {images.shape[0]} {split} images "
                f"but {labels.shape[0]} {split} labels"
            )
        if labels.size and int(labels.max()) >= NUM_CLASSES:
            label_path = _find_file(directory, SPLIT_FILES[f"{split}_labels"])
            bad = int(np.argmax(labels >= NUM_CLASSES))
            raise DataError(
                f"{label_path}: label out of range: label {int(labels[bad])} at index {bad}, "
                f"expected 0..{NUM_CLASSES - 1}"
            )
    verified = (
        f"SHA-256 of all {checked} files matches"
        if checked == len(SPLIT_FILES)
        else f"structure checked; SHA-256 checked for {checked} of {len(SPLIT_FILES)} files"
    )
    return RawSplits(**arrays, verified=verified)


def cache_dir(dataset: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "costhill" / dataset


def candidate_dirs(info: DatasetInfo, data_dir: str | Path | None) -> list[tuple[str, Path]]:
    """Where to look for ``info``'s files, in order, each with the reason it is looked at."""
    if info.shipped_dir is not None:
        return [("shipped with costhill", info.shipped_dir)]
    if data_dir is not None:
        return [("data_dir", Path(data_dir))]
    found: list[tuple[str, Path]] = []
    env = os.environ.get("COSTHILL_DATA")
    if env:
        found.append(("$COSTHILL_DATA", Path(env)))
    found.append(("user cache", cache_dir(info.name)))
    found.extend(("system package", d) for d in info.system_dirs)
    return found


def _has_idx_files(directory: Path) -> bool:
    return all(_find_file(directory, stem) is not None for stem in SPLIT_FILES.values())


def _has_all_files(directory: Path, info: DatasetInfo) -> bool:
    return _has_idx_files(directory) or bool(csv_files(directory, info))


def fetch(
    dataset: str = "fashion-mnist",
    *,
    mirror: str | None = None,
    progress: ProgressFn | None = None,
    retry: Retry = DEFAULT_RETRY,
    sleep: Callable[[float], None] = time.sleep,
) -> Path:
    """Download ``dataset``'s four files into the user cache; return the cache directory.

    Each file goes to a temporary file beside its target, is verified, then renamed, so the cache
    never holds a bad file. A file that fails its checks is downloaded again (``retry``), since a
    proxy or a mirror may have handed over a broken copy. ``progress(name, bytes_done,
    bytes_total)`` is called as bytes arrive.
    """
    info = dataset_info(dataset)
    base = mirror or os.environ.get("COSTHILL_MIRROR") or info.mirror
    if base is None:
        raise DataError(f"dataset {dataset!r} ships with costhill and is never downloaded")
    target = cache_dir(dataset)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cache {target}: cannot be made ({err.strerror})") from None
    for key, stem in SPLIT_FILES.items():
        final = target / f"{stem}.gz"
        if final.is_file():
            continue
        url = base.rstrip("/") + f"/{stem}.gz"
        for attempt in range(1, retry.attempts + 1):
            wrong = _fetch_file(url, final, key, info, progress, retry, sleep)
            if wrong is None:
                break
            if attempt < retry.attempts:
                sleep(retry.wait(attempt))
        else:
            raise DataError(
                f"{url}: {wrong} after download ({retry.attempts} attempts); nothing was kept"
            )
    return target


def _fetch_file(
    url: str,
    final: Path,
    key: str,
    info: DatasetInfo,
    progress: ProgressFn | None,
    retry: Retry,
    sleep: Callable[[float], None],
) -> str | None:
    """Download ``url`` to ``final`` through a temporary file; None if it was kept, else what
    was wrong with it (the temporary file is gone either way)."""
    stem = final.name.removesuffix(".gz")
    try:
        fd, tmp_name = tempfile.mkstemp(dir=final.parent, prefix=f".{stem}.", suffix=".part")
    except OSError as err:
        raise DataError(f"cache {final.parent}: cannot be written ({err.strerror})") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            download(url, out, name=stem, retry=retry, progress=progress, sleep=sleep)
        try:
            data = read_idx_bytes(tmp)
            expected_sha = info.sha256.get(key)
            if expected_sha is not None and hashlib.sha256(data).hexdigest() != expected_sha:
                return "checksum mismatch"
            magic = IMAGE_MAGIC if key.endswith("images") else LABEL_MAGIC
            parse_idx(data, path=Path(url), expect_magic=magic)
        except DataError as err:
            return str(err).removeprefix(f"{tmp}: ")
        os.replace(tmp, final)
        return None
    except OSError as err:  # the cache's disk is full, or the folder read-only
        raise DataError(f"cache {final.parent}: cannot be written ({err.strerror})") from None
    finally:
        tmp.unlink(missing_ok=True)


def locate(
    dataset: str = "fashion-mnist",
    data_dir: str | Path | None = None,
    *,
    download: bool = True,
    progress: ProgressFn | None = None,
) -> tuple[str, Path]:
    """Find ``dataset``'s files; return (where it was found, directory)."""
    info = dataset_info(dataset)
    looked = candidate_dirs(info, data_dir)
    for reason, directory in looked:
        if _has_all_files(directory, info):
            return reason, directory
    if data_dir is not None:
        # The user named a directory: look nowhere else, and say what is missing there.
        missing = [s for s in SPLIT_FILES.values() if _find_file(Path(data_dir), s) is None]
        raise DataError(
            f"data_dir {data_dir}: missing file(s) {', '.join(missing)} (gzip or raw IDX), "
            f"and no Kaggle CSV form ({info.name}_train.csv and {info.name}_test.csv)"
        )
    if download and info.mirror is not None:
        try:
            return "downloaded to the user cache", fetch(dataset, progress=progress)
        except DataError as err:
            download_error = str(err)
    else:
        download_error = "download not attempted"
    places = "; ".join(f"{reason}: {d}" for reason, d in looked)
    hint = (
        "install Debian's dataset-fashion-mnist, run `costhill data fetch`, "
        "or pass --data DIR holding the four IDX files"
        if dataset == "fashion-mnist"
        else "run `costhill data fetch --dataset mnist`, or pass --data DIR"
    )
    raise DataError(
        f"dataset {dataset!r} not found. Looked in {places}; {download_error}. To get it: {hint}."
    )


def split_validation(
    images: np.ndarray, labels: np.ndarray, validation: int, *, split_seed: int
) -> tuple[Split, Split]:
    """Hold out ``validation`` training examples, chosen by ``split_seed``."""
    n = labels.shape[0]
    if not 0 <= validation < n:
        raise DataError(
            f"validation {validation}: must be between 0 and {n - 1} "
            f"(the training split has {n} examples)"
        )
    order = np.random.default_rng(split_seed).permutation(n)
    val_idx, train_idx = np.sort(order[:validation]), np.sort(order[validation:])
    return Split(images[train_idx], labels[train_idx]), Split(images[val_idx], labels[val_idx])


def _to_split(images: np.ndarray, labels: np.ndarray) -> Split:
    return Split(images.astype(np.float32) / np.float32(255.0), labels.astype(np.int32))


def load(
    dataset: str = "fashion-mnist",
    *,
    data_dir: str | Path | None = None,
    validation: int | None = None,
    split_seed: int = 0,
    download: bool = True,
    progress: ProgressFn | None = None,
) -> Dataset:
    """Load, verify and split a dataset.

    Args:
      dataset: ``fashion-mnist``, ``mnist`` or ``fashion-mnist-sample``.
      data_dir: a directory holding the four IDX files; when given, nowhere else is looked at.
      validation: how many training examples to hold out (None: the dataset's default).
      split_seed: chooses the held-out examples, apart from the run's seed so that runs with
        different seeds are validated on the same examples.
      download: whether to download into the user cache when nothing is found.

    Returns:
      A ``Dataset`` with float32 pixels in [0, 1] and int32 labels.

    Examples:
      >>> ds = load("fashion-mnist-sample", validation=200)
      >>> len(ds.train), len(ds.validation), len(ds.test)
      (1800, 200, 500)
    """
    info = dataset_info(dataset)
    reason, directory = locate(dataset, data_dir, download=download, progress=progress)
    raw = read_directory(directory, info)
    n_val = info.default_validation if validation is None else validation
    train_images = raw.train_images
    train, val = split_validation(train_images, raw.train_labels, n_val, split_seed=split_seed)
    return Dataset(
        name=dataset,
        train=_to_split(train.images, train.labels),
        validation=_to_split(val.images, val.labels),
        test=_to_split(raw.test_images, raw.test_labels),
        source=f"{directory} ({reason})",
        verified=raw.verified,
        class_names=info.class_names,
    )


def load_for(
    config: RunConfig, *, data_dir: str | Path | None = None, progress: ProgressFn | None = None
) -> Dataset:
    """The dataset and split ``config`` names (its dataset, validation size and split seed)."""
    return load(
        config.dataset,
        data_dir=data_dir,
        validation=config.validation,
        split_seed=config.split_seed,
        progress=progress,
    )


def full_data_available(data_dir: str | Path | None = None) -> bool:
    """Whether the full Fashion-MNIST set is on this machine (without downloading)."""
    try:
        locate("fashion-mnist", data_dir, download=False)
    except DataError:
        return False
    return True
