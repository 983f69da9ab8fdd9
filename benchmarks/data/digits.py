"""scikit-learn's bundled 8x8 digits, upsampled to 16x16: a tiny image set for CPU runs.

No download and no cache: decoding takes milliseconds.
"""
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from benchmarks.core.errors import ConfigError
from benchmarks.data.registry import Dataset, Split, register_dataset

SIZE = 16
TEST_SIZE = 0.25
SPLIT_SEED = 0


def _upsample(x):
    """(N, 1, 8, 8) float pixels in 0..255 -> (N, 1, 16, 16) uint8: the upsampling every digit gets."""
    x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).contiguous()


def from_image(img):
    """An outside picture as a digit: grey levels, light ink on black as the dataset stores them.
    A 16x16 picture is taken as it is (a saved example comes back unchanged); any other size is
    averaged down to the source's 8x8 and upsampled as the dataset's digits are."""
    img = img.convert("L")
    if img.size != (SIZE, SIZE):
        small = torch.as_tensor(np.array(img.resize((8, 8), Image.BOX)), dtype=torch.float32)
        return _upsample(small.view(1, 1, 8, 8))[0]
    return torch.as_tensor(np.array(img)).view(1, SIZE, SIZE)


@register_dataset("digits", shape=(1, SIZE, SIZE), from_image=from_image)
def load(root=None, cache_dir=None):
    if root is not None:
        raise ConfigError(f"--data-root {root} is not used: digits are scikit-learn's bundled copy, no files are "
                          "read. Leave it out.")
    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32)  # (N, 8, 8), values 0..16
    labels = torch.as_tensor(bunch.target, dtype=torch.int64)

    x = _upsample(images.unsqueeze(1) * (255.0 / 16.0))

    idx = torch.arange(len(labels)).numpy()
    train_idx, test_idx = train_test_split(idx, test_size=TEST_SIZE, random_state=SPLIT_SEED,
                                           stratify=labels.numpy())
    # Kept in train_test_split's (shuffled) order, exactly as it returns them.
    train_idx, test_idx = torch.as_tensor(train_idx), torch.as_tensor(test_idx)
    train = Split(x[train_idx].contiguous(), labels[train_idx].contiguous())
    test = Split(x[test_idx].contiguous(), labels[test_idx].contiguous())

    meta = {
        "source": "sklearn.datasets.load_digits",
        "source_size": [8, 8],
        "source_range": [0, 16],
        "scale": "x * 255 / 16",
        "resize": {"mode": "bilinear", "align_corners": False, "size": [SIZE, SIZE],
                   "function": "torch.nn.functional.interpolate"},
        "rounding": "torch.round (half to even), clamp 0..255, uint8",
        "size": SIZE,
        "split": {"method": "sklearn.model_selection.train_test_split",
                  "test_size": TEST_SIZE, "random_state": SPLIT_SEED, "stratify": True,
                  "order": "as returned by train_test_split"},
        "split_sizes": {"train": len(train_idx), "test": len(test_idx)},
        "cache_files": {},  # decoded in milliseconds, never cached
    }
    return Dataset(name="digits", kind="image", shape=(1, SIZE, SIZE), train=train, test=test,
                   valid=None, label_names=[str(d) for d in range(10)], meta=meta)
