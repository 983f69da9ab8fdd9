"""Dataset registry and the two dataclasses every loader returns.

A loader is a plain function `fn(root=None, cache_dir=None, **options) -> Dataset`,
registered under a name with `@register_dataset(name)`. Its keyword parameters other
than `root` and `cache_dir` are its options; `load_dataset` rejects any other keyword
with a ConfigError so a typo in a config never silently falls back to a default.

An image dataset may also register `from_image`: how one picture from outside the dataset (a
PIL image of any size) becomes an example of it, so that `encode --images` feeds a trained
encoder what its training data looked like (benchmarks/data/images.py).
"""
import difflib
import inspect
from dataclasses import dataclass, field
from pathlib import Path

import torch

from benchmarks.core.errors import ConfigError
from benchmarks.core.io import default_cache_dir


@dataclass
class Split:
    x: torch.Tensor  # images: uint8 (N, C, H, W), contiguous; points: float32 (N, 2)
    y: torch.Tensor  # int64: (N,) class index, or (N, 40) in {0, 1} for celeba attributes

    def __len__(self):
        return self.x.shape[0]


@dataclass
class Dataset:
    name: str
    kind: str  # "image" or "points"
    shape: tuple  # (C, H, W) for images, (2,) for points
    train: Split
    test: Split
    valid: "Split | None" = None  # only celeba has an official validation partition
    label_names: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # JSON-serialisable protocol facts


_LOADERS = {}
_SHAPES = {}
_FROM_IMAGE = {}
_RESERVED = ("root", "cache_dir")


def register_dataset(name, shape=None, from_image=None):
    """Decorator: register `fn` as the loader for `name`. `shape`, the (C, H, W) or (2,) its
    Dataset will have, lets `run` build every model and check it before any data is loaded.
    `from_image(PIL image) -> uint8 tensor of that shape`: the dataset's own preparation applied
    to an outside picture."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"dataset name must be a non-empty string, got {name!r}")
    if any(c.isspace() for c in name):
        # Names are typed on the command line and used in cache file names.
        raise ValueError(f"dataset name must not contain whitespace, got {name!r}")
    if name in _LOADERS:
        raise ValueError(f"dataset {name!r} is already registered")

    def decorate(fn):
        if name in _LOADERS:
            raise ValueError(f"dataset {name!r} is already registered")
        _LOADERS[name] = fn
        if shape is not None:
            _SHAPES[name] = tuple(shape)
        if from_image is not None:
            _FROM_IMAGE[name] = from_image
        return fn

    return decorate


def declared_shape(name):
    """The shape the loader declared at registration, or None."""
    return _SHAPES.get(name)


def image_preparation(name):
    """The `from_image` registered with dataset `name`, or None."""
    return _FROM_IMAGE.get(name)


def available_datasets():
    return sorted(_LOADERS)


def _option_names(fn):
    """The loader's allowed options, or None when it takes **kwargs (anything goes)."""
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in _RESERVED]


def load_dataset(name, root=None, cache_dir=None, **options):
    """Load a registered dataset; `cache_dir=None` means `default_cache_dir()`."""
    if name not in _LOADERS:
        names = available_datasets()
        close = difflib.get_close_matches(str(name), names, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"Unknown dataset {name!r}.{hint} "
                          f"Available datasets: {', '.join(names) or '(none)'}.")
    fn = _LOADERS[name]
    allowed = _option_names(fn)
    if allowed is not None:
        for key in options:
            if key not in allowed:
                raise ConfigError(
                    f"Unknown option {key!r} for dataset {name!r}. "
                    f"Allowed options: {', '.join(allowed) or '(none)'}.")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return fn(root=root, cache_dir=cache_dir, **options)
