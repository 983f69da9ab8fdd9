"""Atomic writes (metrics/cache.py's writer): a reader (or a resumed run) never sees a
half-written file. And where the caches live.
"""
import json
import os
from pathlib import Path

from metrics.cache import CACHE_VARIABLE, atomic_torch_save, atomic_write  # noqa: F401 - the harness's writers live here too


def atomic_write_text(path, text):
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_figure(fig, path, **options):
    """A matplotlib figure as a PNG at `path`, written atomically like every other file (a kill
    mid-write leaves the old picture or none, never a truncated one); `options` go to savefig.
    Closes fig."""
    import matplotlib.pyplot as plt  # the figure's own module: whoever drew fig imported it already

    try:
        atomic_write(path, lambda f: fig.savefig(f, format="png", **options))
    finally:
        plt.close(fig)


def default_cache_dir():
    """Where decoded datasets and trained helper models are cached. Every cache reads and writes
    through metrics.cache.read_entry / write_entry: a damaged entry is recomputed and an
    unwritable folder only costs the caching, never the run."""
    root = os.environ.get(CACHE_VARIABLE)
    if root:
        return Path(root)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "bigan-bench"
