"""Set for every test and doctest, before JAX is imported."""

import os

# Tests run on the CPU with deterministic, single-device JAX.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
# Training keeps compilations on disk; in-process tests would all share the first test's folder.
# tests/test_compilation_cache.py turns it on in fresh processes.
os.environ.setdefault("COSTHILL_COMPILATION_CACHE", "off")
