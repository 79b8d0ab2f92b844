"""Errors that costhill reports to its users as one clear line, never as a traceback.

The CLI turns every ``CosthillError`` into ``Error: <message>`` and exit code 2.
"""


class CosthillError(Exception):
    """Base class: a problem with the user's input, named and explained."""


class DataError(CosthillError):
    """A dataset file is missing, broken or does not verify."""


class ConfigError(CosthillError):
    """A configuration value, preset, initializer or optimizer spec is invalid."""


class StoreError(CosthillError):
    """The run store cannot be opened, or a run asked for is not in it."""


class ResourceError(CosthillError):
    """The work asked for would not fit: memory (estimated up front) or disk."""
