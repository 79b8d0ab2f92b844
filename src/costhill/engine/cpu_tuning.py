"""How costhill's compiled epochs run on a CPU: XLA's compile options and its thread count.

Each choice here was measured (``python -m bench``, ``python -m bench.threads``; the figures are
in BENCHMARKS.md, "Engine choices") and is recorded with every run, so that a result can be
traced to the engine settings that produced it:

- ``epoch_compiler_options``: options for one compiled epoch, chosen per optimizer and model;
- ``preferred_xla_threads`` / ``use_preferred_xla_threads``: XLA's CPU thread count for a process,
  which must be chosen before JAX starts its CPU client.

Example:
    >>> from costhill import RunConfig
    >>> from costhill.engine.cpu_tuning import preferred_xla_threads
    >>> stochastic_sgd = RunConfig(optimizer="sgd", batch_size=1)  # the seed MLP: 0.72 MB
    >>> preferred_xla_threads([stochastic_sgd], l2_cache_bytes=1 << 20)  # fits a 1 MiB L2
    1
    >>> preferred_xla_threads([stochastic_sgd], l2_cache_bytes=512 << 10) is None  # not 512 KiB
    True
    >>> preferred_xla_threads([RunConfig(optimizer="adam", batch_size=64)]) is None
    True
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..models import DENSE_MODELS, IMAGE_SHAPE, NUM_CLASSES

# Plain SGD's update is one multiply-add a parameter and bound by memory; at 512 bits XLA's own
# batch-1 matrix-vector products ran slower than at 256.
_NARROW_VECTOR_OPTIMIZERS = frozenset({"sgd"})
# Models made of dense layers only. Their products ran faster in Eigen than in YNNPACK (XLA's
# default for plain dots); the CNN's ran slower.
# Their parameter count follows from the config alone (``parameter_bytes``).
_DENSE_MODELS = frozenset(DENSE_MODELS)

# Above this batch size a plain-SGD step has enough work to share between cores (batch 16 ran
# alike on one thread and on two, batch 64 slower on one).
_ONE_THREAD_MAX_BATCH = 8
# XLA's CPU client names its worker threads so (Linux truncates names to 15 characters).
_XLA_WORKER_THREAD = "tf_XLAEigen"
_THREAD_ENV = ("PJRT_NPROC", "NPROC")  # read, in this order, by XLA's CPU client at start-up


@functools.cache
def _cpu_has_avx512() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512f" in flags


def epoch_compiler_options(optimizer_name: str | None, model_name: str = "mlp") -> dict[str, Any]:
    """XLA options for a compiled CPU epoch of ``optimizer_name`` on ``model_name``.

    - Fast math, with NaN and infinity semantics kept (a diverged run is still detected) and
      library functions exact: XLA may then multiply by a reciprocal instead of dividing, which
      takes one of Adam's two divisions per parameter out of the loop. LLVM may also reorder and
      fuse (FMA) float arithmetic, so results differ from the default in the last bits; they
      remain the same from run to run.
    - 512-bit vectors where the CPU has AVX-512 (XLA prefers 256): the square roots and divisions
      of adaptive optimizers ran faster, and momentum's. Not for plain SGD.
    - Eigen rather than YNNPACK for the dots of dense-only models.

    On other backends no option is set. An option the installed XLA does not know is dropped at
    compile time (``compile_lowered``); the options used are stored with every run
    (``versions["xla_options"]``).

    Example:
        >>> options = epoch_compiler_options("adam")
        >>> options["xla_cpu_fast_math_honor_nans"]
        True
    """
    import jax

    if jax.default_backend() != "cpu":
        return {}
    options: dict[str, Any] = {
        "xla_cpu_enable_fast_math": True,
        "xla_cpu_fast_math_honor_nans": True,
        "xla_cpu_fast_math_honor_infs": True,
        "xla_cpu_fast_math_honor_functions": True,
        "xla_cpu_fast_math_honor_division": False,
    }
    if _cpu_has_avx512() and optimizer_name not in _NARROW_VECTOR_OPTIMIZERS:
        options["xla_cpu_prefer_vector_width"] = 512
    if model_name in _DENSE_MODELS:
        options["xla_cpu_experimental_ynn_fusion_type"] = ""
    return options


def compile_lowered(lowered: Any, options: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Compile ``lowered`` with ``options``, dropping any the installed XLA does not know (older
    jaxlibs); returns the executable and the options it was compiled with."""
    import jax

    options = dict(options)
    while True:
        try:
            return lowered.compile(options), options
        except jax.errors.JaxRuntimeError as error:
            unknown = re.search(r"No such compile option: '(\w+)'", str(error))
            if unknown is None or unknown.group(1) not in options:
                raise
            del options[unknown.group(1)]


def describe_options(options: dict[str, Any]) -> str:
    return " ".join(f"{k}={v!r}" for k, v in sorted(options.items()))


# -- threads ---------------------------------------------------------------------------------------


@functools.cache
def _l2_cache_bytes() -> int | None:
    """One core's L2 cache, from Linux's sysfs; None where it cannot be read."""
    units = {"K": 1 << 10, "M": 1 << 20}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            if (index / "level").read_text().strip() != "2":
                continue
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        match = re.fullmatch(r"(\d+)([KM]?)", size)
        if match:
            return int(match.group(1)) * units.get(match.group(2), 1)
    return None


def parameter_bytes(config: RunConfig) -> int | None:
    """Bytes of float32 parameters of a dense model (``mlp``, ``logreg``); None for others."""
    if config.model not in _DENSE_MODELS:
        return None
    hidden = config.hidden if config.model == "mlp" else ()
    sizes = (IMAGE_SHAPE[0] * IMAGE_SHAPE[1], *hidden, NUM_CLASSES)
    return 4 * sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))


def _one_thread_is_faster(config: RunConfig, l2_bytes: int | None) -> bool:
    plain_sgd = config.optimizer == "sgd" and not dict(config.opt).get("momentum")
    batch = config.batch_size
    small_steps = batch != "full" and int(batch) <= _ONE_THREAD_MAX_BATCH
    size = parameter_bytes(config)
    fits_one_core = size is not None and l2_bytes is not None and size <= l2_bytes
    return plain_sgd and small_steps and fits_one_core


def preferred_xla_threads(
    configs: Sequence[RunConfig], *, l2_cache_bytes: int | None = None
) -> int | None:
    """The XLA CPU thread count these runs train fastest with, or None for XLA's default (one a
    core).

    One thread for plain SGD at batch ≤ 8 on a dense model whose parameters fit in one core's L2
    cache. XLA splits a large weight update between two cores; at these batch sizes a step is a
    few microseconds of work, and the halves of the first layer's weights then travel between
    the cores' caches every step. Everything else ran slower on one thread: momentum, Adam and
    RMSprop (their per-parameter updates do share well), and MLPs too wide for one L2. The
    figures are in BENCHMARKS.md, "Engine choices" (``python -m bench.threads``).

    The count holds for a whole process, so a set of runs gets one only if every run prefers it.
    ``l2_cache_bytes`` is one core's L2 cache; by default this machine's, read from Linux.
    """
    if not configs:
        return None
    l2_bytes = _l2_cache_bytes() if l2_cache_bytes is None else l2_cache_bytes
    return 1 if all(_one_thread_is_faster(c, l2_bytes) for c in configs) else None


def _backends_started() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):
        return True  # cannot tell: leave the process as it is


def default_xla_threads() -> int:
    """XLA's CPU thread count when nobody sets one: the cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def user_xla_threads(environ: Mapping[str, str] = os.environ) -> str | None:
    """The XLA CPU thread count the user set in ``environ`` (``PJRT_NPROC``, else ``NPROC``, as
    XLA's CPU client reads them), or None."""
    return next((environ[name] for name in _THREAD_ENV if name in environ), None)


def use_preferred_xla_threads(configs: Sequence[RunConfig]) -> int | None:
    """Set XLA's CPU thread count for this process to ``preferred_xla_threads(configs)``.

    Takes effect only before JAX starts its CPU client (the first array or computation), and
    never overrides a count the user set in ``PJRT_NPROC`` or ``NPROC``. The CLI calls it before
    it trains; a library user may call it first thing. Returns the count set, or None when
    nothing was changed.
    """
    if user_xla_threads() is not None:
        return None
    threads = preferred_xla_threads(configs)
    if threads is None or _backends_started():
        return None
    os.environ[_THREAD_ENV[0]] = str(threads)
    return threads


def xla_threads_in_use() -> int | None:
    """XLA's CPU worker threads in this process (Linux), or None where they cannot be counted."""
    try:
        names = [(task / "comm").read_text().strip() for task in Path("/proc/self/task").iterdir()]
    except OSError:
        return None
    return names.count(_XLA_WORKER_THREAD) or None
