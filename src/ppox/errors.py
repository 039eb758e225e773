"""Errors ppox raises for bad input. The CLI prints their message alone, without a traceback."""


class PpoxError(Exception):
    """Base class: a problem with the user's input (config, environment, files)."""


class ConfigError(PpoxError, ValueError):
    """A config field holds a value that is not allowed. The message names the field."""


class EnvError(PpoxError, ValueError):
    """An environment cannot be made or has a space ppox does not support."""


class CheckpointError(PpoxError):
    """A checkpoint or run directory is missing, corrupted or not ppox's."""


class NumericalError(PpoxError):
    """Training produced non-finite numbers that the configured guard does not recover from
    (``nonfinite_env``, ``nan_guard``); the message says where. The last checkpoint is intact."""
