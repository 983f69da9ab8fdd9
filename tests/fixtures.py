"""Tiny, deterministic stand-ins for the real dataset files, in their official formats.

Plain functions (not pytest fixtures) so any test can import them:
    from tests.fixtures import make_fashion_mnist, make_celeba
"""
import gzip
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CELEBA_ATTRS = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes "
    "No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling "
    "Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace "
    "Wearing_Necktie Young").split()


def _idx_bytes(array, magic):
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def fashion_mnist_arrays(n, seed):
    """(images (n, 28, 28) uint8, labels (n,) uint8). The label is visible in the image
    (a bright bar at row 3 + 2 * label over dim noise), so tiny models can learn it."""
    rng = np.random.default_rng(seed)
    labels = (np.arange(n) % 10).astype(np.uint8)
    rng.shuffle(labels)
    images = rng.integers(1, 60, size=(n, 28, 28), dtype=np.uint8)  # never 0: padding is
    for i, label in enumerate(labels):
        images[i, 3 + 2 * label, 4:24] = 255
    return images, labels


def make_fashion_mnist(root, n_train=64, n_test=32, gz=True):
    """Write the four official IDX files (gzipped unless gz=False) into `root`; returns the
    root as a Path. The content is fashion_mnist_arrays(n_train, 0) / (n_test, 1)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        images, labels = fashion_mnist_arrays(n, seed)
        for stem, data in ((f"{prefix}-images-idx3-ubyte", _idx_bytes(images, 0x803)),
                           (f"{prefix}-labels-idx1-ubyte", _idx_bytes(labels, 0x801))):
            if gz:
                # mtime=0 keeps the bytes (and so the cache key) identical across calls.
                (root / f"{stem}.gz").write_bytes(gzip.compress(data, mtime=0))
            else:
                (root / stem).write_bytes(data)
    return root


def celeba_image(index):
    """A 178x218 RGB picture for image number `index` (1-based): a random background
    colour, a few coloured shapes and some noise, all seeded by `index`."""
    rng = np.random.default_rng(1000 + index)
    img = Image.new("RGB", (178, 218), tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(img)
    for _ in range(3):
        x0, y0 = int(rng.integers(0, 140)), int(rng.integers(0, 180))
        box = (x0, y0, x0 + int(rng.integers(20, 60)), y0 + int(rng.integers(20, 60)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    pixels = np.asarray(img, dtype=np.int16) + rng.integers(-12, 13, (218, 178, 3))
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8))


def celeba_partition(n):
    """Partition codes for images 1..n: about 60% train (0), 20% valid (1), 20% test (2),
    each partition at least one image, in file order like the official file."""
    if n < 3:
        raise ValueError("make_celeba needs n >= 3 so every partition gets an image")
    n_valid = n_test = max(1, n // 5)
    return [0] * (n - n_valid - n_test) + [1] * n_valid + [2] * n_test


def make_celeba(root, n=40):
    """Write a CelebA folder in torchvision's layout into `root`: img_align_celeba/000001.jpg
    ..., list_attr_celeba.txt and list_eval_partition.txt, in the official text formats.
    Images and attributes depend only on the image number, so calling it again with a
    larger n adds images. Returns the root as a Path."""
    root = Path(root)
    (root / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    for i, name in enumerate(names, 1):
        path = root / "img_align_celeba" / name
        if not path.exists():
            celeba_image(i).save(path, quality=90)

    attr_lines = [str(n), " ".join(CELEBA_ATTRS) + " "]
    for i, name in enumerate(names, 1):
        values = np.random.default_rng(i).choice([-1, 1], size=len(CELEBA_ATTRS))
        attr_lines.append(name + " " + " ".join(f"{v:2d}" for v in values))
    (root / "list_attr_celeba.txt").write_text("\n".join(attr_lines) + "\n")

    partition = celeba_partition(n)
    (root / "list_eval_partition.txt").write_text(
        "".join(f"{name} {code}\n" for name, code in zip(names, partition)))
    return root
