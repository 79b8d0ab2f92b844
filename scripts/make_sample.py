"""Cut the shipped sample from the full Fashion-MNIST set (run once; its output is committed).

    python scripts/make_sample.py /usr/share/datasets/fashion-mnist \
        src/costhill/samples/fashion-mnist-sample

Takes the first 200 training and the first 50 test images of each class, in file order, so the
sample is balanced, real, and can be cut again identically. Prints the SHA-256 of each decompressed
file for ``costhill.data.DATASETS``.
"""

import gzip
import hashlib
import struct
import sys
from pathlib import Path

import numpy as np

from costhill.data import DATASETS, SPLIT_FILES, read_directory

PER_CLASS = {"train": 200, "test": 50}


def _idx_bytes(array: np.ndarray) -> bytes:
    magic = 0x0800 | array.ndim
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()


def main(source: str, target: str) -> None:
    raw = read_directory(Path(source), DATASETS["fashion-mnist"])
    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    for split, per_class in PER_CLASS.items():
        labels = getattr(raw, f"{split}_labels")
        images = getattr(raw, f"{split}_images")
        keep = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)]))
        for kind, array in (("images", images[keep]), ("labels", labels[keep])):
            data = _idx_bytes(np.ascontiguousarray(array, dtype=np.uint8))
            stem = SPLIT_FILES[f"{split}_{kind}"]
            # mtime=0 keeps the gzip bytes identical from one cut to the next.
            (out / f"{stem}.gz").write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
            print(f"{split}_{kind}", hashlib.sha256(data).hexdigest())


if __name__ == "__main__":
    main(*sys.argv[1:3])
