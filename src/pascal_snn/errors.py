"""User-facing errors.

Every error a user can cause derives from :class:`PascalError`. Its message says what was wrong
and what to do; the CLI prints it without a traceback and exits with status 2.
"""

from __future__ import annotations


class PascalError(Exception):
    """Base class of every error caused by user input (bad flags, files, models, data)."""


class ConversionError(PascalError, ValueError):
    """The model contains something the PASC / vanilla converter cannot turn into spikes exactly."""


class CheckpointError(PascalError):
    """A checkpoint is missing, unreadable, untrusted, or does not match the model."""


class DataError(PascalError):
    """A data set is missing, malformed, or does not fit the model."""


class ConfigError(PascalError, ValueError):
    """Conflicting or invalid options."""
