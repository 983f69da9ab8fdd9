"""Atomic file writes for the metric back ends' caches (domain classifiers, reference
statistics) and, through benchmarks/core/io.py, for every file the harness writes: a reader (or a
resumed run) never sees a half-written file.

Each file is written to a temporary sibling and renamed into place; rename is atomic on POSIX
and Windows when both paths are on one filesystem.

The caches (these and the harness's dataset cache) read and write their entries through
read_entry / save_entry, and write_entry takes any other cache file (a JSON one too): a damaged
entry is computed again, and an unwritable cache folder costs only that time, never the run.
"""
import io
import os
import tempfile
import warnings
from pathlib import Path

import torch


def atomic_write(path, write):
    """Call write(binary file) on a temporary sibling of `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a cache may be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _torch_bytes(obj):
    """A writer of torch.save(obj), serialised in memory first, so a full disk surfaces as the
    file write's OSError (ENOSPC) rather than as torch's zip writer's RuntimeError."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return lambda f: f.write(buf.getbuffer())


def atomic_torch_save(obj, path):
    atomic_write(path, _torch_bytes(obj))


# --- caches: an optimisation, never a failure ------------------------------------------------

# The harness keeps every cache under this folder (benchmarks/core/io.py default_cache_dir); the
# warnings name it, since it is what the user changes to fix an unwritable cache.
CACHE_VARIABLE = "BIGAN_BENCH_CACHE"
_unwritable = []  # the first unwritable cache file of this process: later ones warn no more


def read_entry(path, check, what="cache file"):
    """check(torch.load(path)) -> the usable entry, or None when the file is absent, unreadable
    or malformed (then the caller computes it again). `check` raises (any exception) on an entry
    of the wrong shape; a damaged file warns once, with its path."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return check(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as e:  # noqa: BLE001 - any failure means "not cached"; the inputs are still there
        warnings.warn(f"Ignoring unreadable {what} {path} ({type(e).__name__}: {e}); computing it again "
                      f"(the caches live under ${CACHE_VARIABLE}).", stacklevel=2)
        return None


def write_entry(path, write):
    """atomic_write(path, write), or, when the cache folder cannot be written (read-only, full,
    not a folder), nothing but one warning per process: the entry is computed again next time.
    Returns whether the file was written."""
    try:
        atomic_write(path, write)
        return True
    except OSError as e:
        if not _unwritable:
            _unwritable.append(path)
            warnings.warn(f"Cannot write the cache file {path} ({e.strerror or e}); going on without caching, so it "
                          f"is computed again next time. Set {CACHE_VARIABLE} to a writable folder to keep the "
                          "caches.", stacklevel=2)
        return False


def save_entry(obj, path):
    """torch.save(obj) as a cache entry (write_entry)."""
    return write_entry(path, _torch_bytes(obj))
