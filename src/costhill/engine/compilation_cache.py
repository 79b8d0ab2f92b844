"""A compilation cache on disk, so that ``costhill train`` run again on a shape it has seen loads
its compiled epoch instead of compiling it.

Within one process costhill compiles a shape once (``engine.cache``); a fresh process starts
over, and compilation is about half of a short run's start-up (BENCHMARKS.md, "Engine choices").
JAX keeps that cache; this module only decides where:

    ``$COSTHILL_COMPILATION_CACHE`` if set (``off`` disables it), else
    ``$XDG_CACHE_HOME/costhill/xla`` (``~/.cache/costhill/xla``),

then a folder per JAX version (JAX never reads another version's entries; an old folder can go)
and per XLA CPU thread count: XLA splits work into parallel tasks for the threads it compiles
for, and JAX's cache key leaves the count out, so an executable compiled for one thread and
loaded on two runs on one. A ``JAX_COMPILATION_CACHE_DIR`` the user set wins, as JAX's own.
Entries are small (an epoch, an evaluation, an initialization); nothing is evicted, and the
folder may be deleted at any time.

Example:
    >>> from costhill.engine.compilation_cache import compilation_cache_dir
    >>> folder = compilation_cache_dir({"COSTHILL_COMPILATION_CACHE": "/tmp/c", "PJRT_NPROC": "1"})
    >>> folder.parent.parent, folder.name
    (PosixPath('/tmp/c'), 'threads-1')
    >>> compilation_cache_dir({"COSTHILL_COMPILATION_CACHE": "off"}) is None
    True
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

from .cpu_tuning import default_xla_threads, user_xla_threads

ENV = "COSTHILL_COMPILATION_CACHE"
_OFF = frozenset({"off", "0", "false", "no", ""})
# JAX's warning when an entry cannot be read (cut short by a crash mid-write, say); it then
# compiles, but never replaces the entry, so the warning would come back with every run.
_UNREADABLE = re.compile(r"Error reading persistent compilation cache entry for '([^']+)'")


def compilation_cache_dir(environ: Mapping[str, str] = os.environ) -> Path | None:
    """Where this process's compiled executables are kept, or None when the user's own JAX
    setting or ``COSTHILL_COMPILATION_CACHE=off`` says not to choose one. Call it after the thread
    count is settled (``cpu_tuning.use_preferred_xla_threads``)."""
    if "JAX_COMPILATION_CACHE_DIR" in environ:
        return None
    chosen = environ.get(ENV)
    if chosen is not None and chosen.strip().lower() in _OFF:
        return None
    base = (
        Path(chosen).expanduser()
        if chosen is not None
        else Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "costhill" / "xla"
    )
    threads = user_xla_threads(environ) or default_xla_threads()
    return base / f"jax-{_jax_version()}" / f"threads-{threads}"


@functools.cache
def _jax_version() -> str:
    # From the package's metadata, not ``jax.__version__``: naming the folder imports nothing;
    # once a process, since reading metadata costs more than a cheap run's epoch.
    from importlib.metadata import version

    return version("jax")


def use_compilation_cache(environ: Mapping[str, str] = os.environ) -> Path | None:
    """Point JAX's persistent compilation cache at ``compilation_cache_dir(environ)`` and cache
    every compilation (JAX's default skips those under a second, most of a short run's).
    Returns the folder, or None when nothing was changed."""
    import jax

    directory = compilation_cache_dir(environ)
    if directory is None or getattr(jax.config, "jax_compilation_cache_dir", None):
        return None
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory


@contextlib.contextmanager
def removing_unreadable_entries(directory: Path | None) -> Iterator[list[str]]:
    """Within it, JAX's warnings about cache entries it could not read (it compiles instead) are
    collected rather than printed, one per entry; on the way out those entries are removed from
    ``directory``, so that the next run writes them anew. Yields the names of the compiled
    functions whose entries went (sorted once the block ends); other warnings pass through."""
    names: set[str] = set()
    removed: list[str] = []
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        found = _UNREADABLE.search(str(message))
        if found is None:
            shown(message, category, filename, lineno, file, line)
        else:
            names.add(found.group(1))

    warnings.showwarning = show
    try:
        yield removed
    finally:
        warnings.showwarning = shown
        if directory is not None:
            for name in sorted(names):
                # The warning names the function, not the file: every entry of that function
                # goes, and the good ones among them are compiled and kept again next time.
                for entry in directory.glob(f"{name}-*"):
                    entry.unlink(missing_ok=True)
                removed.append(name)
