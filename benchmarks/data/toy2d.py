"""2-D Gaussian mixtures (the mode-collapse benchmarks of ALI/VEEGAN/PacGAN).

The samples come from fixed data seeds, never the run seed, so every run of every
model sees the same points.
"""
import math

import torch

from benchmarks.data.registry import Dataset, Split, register_dataset
from benchmarks.core.errors import ConfigError

TRAIN_SEED, TEST_SEED = 1234, 1235


def _grid25():
    return [[float(a), float(b)] for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)], 0.05


def _ring8():
    centres = [[2.0 * math.cos(2 * math.pi * k / 8), 2.0 * math.sin(2 * math.pi * k / 8)]
               for k in range(8)]
    return centres, 0.02


VARIANTS = {"grid25": _grid25, "ring8": _ring8}


def _sample(centres, std, n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(len(centres), (n,), generator=g)  # equal mode weights
    noise = torch.randn((n, 2), generator=g)
    x = torch.tensor(centres, dtype=torch.float32)[y] + std * noise
    return Split(x.contiguous(), y.to(torch.int64))


def _count(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"toy2d option {name!r} must be a positive integer, got {value!r}.")
    return value


@register_dataset("toy2d", shape=(2,))
def load(root=None, cache_dir=None, variant="grid25", n_train=50_000, n_test=5_000):
    if root is not None:
        raise ConfigError(f"--data-root {root} is not used: toy2d's points are generated, no files are read. "
                          "Leave it out.")
    if variant not in VARIANTS:
        raise ConfigError(f"Unknown toy2d variant {variant!r}. "
                          f"Allowed variants: {', '.join(VARIANTS)}.")
    n_train, n_test = _count("n_train", n_train), _count("n_test", n_test)
    centres, std = VARIANTS[variant]()
    meta = {
        "source": "generated Gaussian mixture",
        "variant": variant,
        "centres": centres,
        "std": std,
        "weights": "equal",
        "seeds": {"train": TRAIN_SEED, "test": TEST_SEED},
        "split_sizes": {"train": n_train, "test": n_test},
        "cache_files": {},
    }
    return Dataset(name="toy2d", kind="points", shape=(2,),
                   train=_sample(centres, std, n_train, TRAIN_SEED),
                   test=_sample(centres, std, n_test, TEST_SEED), valid=None,
                   label_names=[f"({a:g},{b:g})" for a, b in centres], meta=meta)
