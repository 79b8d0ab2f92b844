"""A 1,000-run store from one real run copied with new seeds, for ``bench/listing.sh``:

python bench/make_listing_store.py runs1000.db
"""

from __future__ import annotations

import copy
import sys

from costhill import RunConfig, train
from costhill.store import Store


def main(path: str, runs: int = 1000) -> None:
    run = train(RunConfig(dataset="fashion-mnist-sample", epochs=3, batch_size=100))
    with Store(path) as store:
        for seed in range(runs):
            copied = copy.copy(run)
            copied.config = run.config.replace(seed=seed)
            copied.run_id = None
            store.save(copied)


if __name__ == "__main__":
    main(sys.argv[1])
