"""Atomic file writes for the metric back ends' caches (domain classifiers, reference
statistics) and, through benchmarks/io.py, for every file the harness writes: a reader (or a
resumed run) never sees a half-written file.

Each file is written to a temporary sibling and renamed into place; rename is atomic on POSIX
and Windows when both paths are on one filesystem.
"""
import io
import os
import tempfile
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


def atomic_torch_save(obj, path):
    """Serialised in memory first, so a full disk surfaces as the file write's OSError (ENOSPC)
    rather than as torch's zip writer's RuntimeError."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, lambda f: f.write(buf.getbuffer()))
