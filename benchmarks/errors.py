"""Errors that are the user's to fix.

Anything raised as a `UserError`, or as a model's `ModelConfigError` (models do not import the
harness), reaches the CLI, which prints its message as one paragraph and exits with code 2 (no
traceback). Everything else is a bug.
"""
from models.errors import ModelConfigError


class UserError(Exception):
    """Bad input: missing or corrupt data, unknown name or key, broken plugin."""

    exit_code = 2


class DataError(UserError):
    """A dataset is missing, incomplete or corrupt. The message names the file and the fix."""


class ConfigError(UserError):
    """An unknown benchmark, config key or override, or a config that does not fit the output folder."""


USER_ERRORS = (UserError, ModelConfigError)  # what the CLI reports as the user's to fix, exit code 2
