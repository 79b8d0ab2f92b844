"""Coverage-guided fuzzing with atheris (libFuzzer) of what reads outside input: the IDX parser,
the plan parser, the initializer specs and the small --opt/--set/--batch-size/--at parsers. Any
exception other than costhill's own is a crash, which libFuzzer reports with the input.

    python tests/fuzz/targets.py idx -runs=20000
    python tests/fuzz/targets.py plan -max_total_time=60

tests/test_fuzz.py runs each target for a fixed number of inputs where atheris installs; the
hypothesis tests beside it run everywhere.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["costhill"]):
    from costhill.data import IMAGE_MAGIC, parse_idx
    from costhill.errors import CosthillError
    from costhill.initializers import make_initializer, parse_init
    from costhill.specs import parse_batch_size, parse_budget, parse_pair, parse_set, parse_spec
    from costhill.sweeps import parse_plan


def _idx(data: bytes) -> None:
    parse_idx(data, path=Path("fuzz.idx"), expect_magic=IMAGE_MAGIC)


def _plan(data: bytes) -> None:
    parse_plan(data.decode("utf-8", errors="replace"), source="fuzz.toml")


def _init(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    make_initializer(parse_init(text), for_bias=len(data) % 2 == 1)


def _small(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    for parse in (
        lambda: parse_pair(text, what="opt"),
        lambda: parse_spec(text, what="schedule"),
        lambda: parse_set((text,)),
        lambda: parse_batch_size(text),
        lambda: parse_budget(text),
    ):
        try:
            parse()
        except CosthillError:
            pass


TARGETS: dict[str, Callable[[bytes], None]] = {
    "idx": _idx,
    "plan": _plan,
    "init": _init,
    "small": _small,
}


def main() -> None:
    target = TARGETS[sys.argv[1]]

    def one_input(data: bytes) -> None:
        try:
            target(data)
        except CosthillError:
            pass

    atheris.Setup([sys.argv[0], *sys.argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
