"""One costhill turn of the benchmark, in a fresh process started as `costhill train` starts:
XLA's CPU thread count is chosen for the config before JAX starts
(``costhill.engine.cpu_tuning``), and compilations are kept where
``costhill.engine.compilation_cache`` says (``COSTHILL_COMPILATION_CACHE``).

    python -m bench.turn '{"batch_size": 1, "optimizer": "sgd", "lr": 0.01}'

prints one JSON line: the training seconds of each of two epochs (compile and evaluation apart),
the seconds spent compiling the epoch, and the XLA CPU threads the run had.
"""

from __future__ import annotations

import json
import os
import sys

EPOCHS = 2


def main(argv: list[str]) -> int:
    config = json.loads(argv[0])
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    from costhill.engine.compilation_cache import use_compilation_cache
    from costhill.engine.cpu_tuning import use_preferred_xla_threads, xla_threads_in_use

    from .peers import costhill_epochs, run_config

    use_preferred_xla_threads([run_config(config, validation=0, epochs=EPOCHS)])
    use_compilation_cache()
    from costhill.data import load

    data = load("fashion-mnist", validation=0, download=False)
    seconds, compile_seconds = costhill_epochs(data, epochs=EPOCHS, **config)
    threads = xla_threads_in_use()
    print(
        json.dumps(
            {"seconds": seconds, "compile_seconds": compile_seconds, "xla_cpu_threads": threads}
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
