"""The decoded-dataset cache: one uint8 tensor file per dataset split.

The file name is the cache key: dataset, split, preprocessing and a hash of the source
listing, so changing the source files or the preprocessing yields a new file instead of
silently reusing stale pixels. A cache file that cannot be read is rebuilt, and one that cannot
be written is left out (metrics/cache.py's read_entry / save_entry, shared by every cache).
"""
import hashlib
import os
from pathlib import Path

import torch

from metrics.cache import read_entry, save_entry

# Bump when the decoding code changes in a way that changes the tensors.
FORMAT_VERSION = 1


class Hasher:
    """Hashes a source listing: entries are added in any order, digest sorts them."""

    def __init__(self):
        self._entries = []

    def add_listing(self, entries):
        """(name, size) pairs, e.g. from one os.scandir pass: cheap enough for 200k JPEGs."""
        self._entries.extend(f"{name}\t{size}" for name, size in entries)

    def add_content(self, path):
        """Name + content hash, for the few small files (IDX, annotation lists) where a
        same-size replacement (e.g. MNIST instead of Fashion-MNIST) must not hit the cache."""
        path = Path(path)
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        self._entries.append(f"{path.name}\t{h.hexdigest()}")

    def hexdigest(self, n=12):
        h = hashlib.sha256(f"v{FORMAT_VERSION}\n".encode())
        for entry in sorted(self._entries):
            h.update(entry.encode("utf-8") + b"\n")
        return h.hexdigest()[:n]


def cache_path(cache_dir, key):
    return Path(cache_dir) / "datasets" / f"{key}.pt"


def load_cached(path, required=("x", "y")):
    """The cached dict, or None when absent, unreadable or malformed (then it is rebuilt)."""
    def check(obj):
        if not isinstance(obj, dict) or any(k not in obj for k in required):
            raise ValueError(f"missing keys, expected {list(required)}")
        if not all(isinstance(obj[k], torch.Tensor) for k in ("x", "y") if k in required):
            raise ValueError("x and y must be tensors")
        if obj["x"].shape[0] != obj["y"].shape[0]:
            raise ValueError("x and y lengths differ")
        return obj

    return read_entry(path, check, "dataset cache file")


def save_cached(path, obj):
    """Write atomically; a read-only cache dir only costs a re-decode next time."""
    save_entry(obj, path)


def cached(path, build, required=("x", "y")):
    """Load `path` if it is a valid cache file, else `build()` the dict and save it."""
    obj = load_cached(path, required)
    if obj is None:
        obj = build()
        save_cached(path, obj)
    return obj


def file_listing(folder):
    """[(name, size)] of the regular files in `folder`, in one scandir pass."""
    with os.scandir(folder) as it:
        return [(e.name, e.stat().st_size) for e in it if e.is_file()]
