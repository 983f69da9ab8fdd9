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


def filesystem_message(e):
    """One paragraph for an OSError from reading or writing results: the path, what happened,
    and what to do. Writes are atomic, so nothing already written is lost."""
    import errno

    what = e.strerror or str(e)
    where = "a file"
    if e.filename:
        where = f"{e.filename}" + (f" -> {e.filename2}" if getattr(e, "filename2", None) else "")
    if e.errno == errno.ENOSPC or e.errno == errno.EDQUOT:
        todo = "Free space on that filesystem, or choose another --out"
    elif e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        todo = "Make the folder writable, or choose another --out"
    else:
        todo = "Fix the path, or choose another --out"
    return (f"cannot write {where}: {what}. {todo}, then run the same command again: finished runs are kept, "
            "and an interrupted run resumes from its last checkpoint (every file is written atomically).")
