"""The run store: schema and queries (``db``), the tables (``schema``), claims (``claims``).

Every SQL statement of costhill lives in this package; callers get typed rows (``Run``,
``EpochRecord``, ``SweepPruning``, ``SearchedRange``) or plain dicts of the summary columns. It
never imports JAX, so listing runs stays fast.
"""

from .db import SearchedRange, Store, SweepPruning, load_run
from .schema import DEFAULT_STORE, DONE, EPOCH_COLUMNS, SCHEMA_VERSION, TRAINED

__all__ = [
    "DEFAULT_STORE",
    "DONE",
    "EPOCH_COLUMNS",
    "SCHEMA_VERSION",
    "TRAINED",
    "SearchedRange",
    "Store",
    "SweepPruning",
    "load_run",
]
