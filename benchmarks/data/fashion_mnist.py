"""Fashion-MNIST from the official IDX files, zero-padded 28x28 -> 32x32.

Where the files are looked for, in order: the `root` argument (then nowhere else),
$BIGAN_BENCH_DATA/fashion-mnist, $BIGAN_BENCH_DATA, the Debian package's folder, a
previous torchvision download in the cache dir, and only then a torchvision download.
"""
import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks.data.cache import Hasher, cache_path, cached
from benchmarks.data.registry import Dataset, Split, register_dataset
from benchmarks.core.errors import DataError

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian: dataset-fashion-mnist
URL = "https://github.com/zalandoresearch/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
SOURCE_SIZE = 28
PAD = 2
SIZE = SOURCE_SIZE + 2 * PAD
IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801  # 0x08 = unsigned byte; ndim 3 / 1
FIX = (f"Reinstall it (apt-get install --reinstall dataset-fashion-mnist) or download "
       f"the four files again from {URL}.")


def _stems():
    return [stem for pair in FILES.values() for stem in pair]


def _find(folder):
    """{stem: path or None}; the uncompressed file wins when both exist (same content)."""
    found = {}
    for stem in _stems():
        found[stem] = next((folder / n for n in (stem, stem + ".gz") if (folder / n).is_file()),
                           None)
    return found


def _torchvision_dir(cache_dir):
    return Path(cache_dir) / "datasets" / "torchvision"


def _download(folder):
    """torchvision's download, last resort; it puts the files in folder/FashionMNIST/raw."""
    from torchvision.datasets import FashionMNIST
    for train in (True, False):
        FashionMNIST(str(folder), train=train, download=True)


def _locate(root, cache_dir):
    if root is not None:
        folder = Path(root).expanduser().resolve()
        found = _find(folder)
        missing = [s for s, p in found.items() if p is None]
        if missing:
            raise DataError(
                f"Fashion-MNIST root {folder} is missing "
                f"{', '.join(m + '[.gz]' for m in missing)}. The folder must hold the four "
                f"official IDX files ({', '.join(s + '.gz' for s in _stems())}; gzipped or not). "
                f"Point the dataset root at the folder that holds them, install them with "
                f"`apt-get install dataset-fashion-mnist` (into {SYSTEM_DIR}), or download them "
                f"from {URL}.")
        return folder, found

    candidates = []
    env = os.environ.get("BIGAN_BENCH_DATA")
    if env:
        env_dir = Path(env).expanduser().resolve()
        candidates += [env_dir / "fashion-mnist", env_dir]
    downloaded = _torchvision_dir(cache_dir).resolve() / "FashionMNIST" / "raw"
    candidates += [SYSTEM_DIR, downloaded]
    for folder in candidates:
        found = _find(folder)
        if all(found.values()):
            return folder, found

    try:
        _download(_torchvision_dir(cache_dir))
    except Exception as e:  # offline, proxy, mirror down: all the same to the user
        reason = " ".join(str(e).split())  # torchvision's message spans lines; ours is one paragraph
        raise DataError(
            f"Fashion-MNIST not found and the download failed ({type(e).__name__}: {reason}). "
            f"Searched: {', '.join(str(c) for c in candidates)}; the BIGAN_BENCH_DATA environment "
            f"variable {'is ' + repr(env) if env else 'is not set'}. Put the four files "
            f"{', '.join(s + '.gz' for s in _stems())} (gzipped or not) in "
            f"$BIGAN_BENCH_DATA/fashion-mnist, or run `apt-get install dataset-fashion-mnist` "
            f"(installs them in {SYSTEM_DIR}), or download them from {URL}.") from e
    found = _find(downloaded)
    if not all(found.values()):
        raise DataError(f"torchvision's Fashion-MNIST download left no IDX files in {downloaded}. "
                        f"Download the four files from {URL} and put them in "
                        f"$BIGAN_BENCH_DATA/fashion-mnist.")
    return downloaded, found


def _read_idx(path, magic, ndim):
    """The array in an IDX file, with its header checked against the file length."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip magic; trust the bytes, not the name
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"Cannot read or decompress the Fashion-MNIST file {path} "
                        f"({type(e).__name__}: {e}); it is truncated or corrupt. {FIX}") from e
    if len(raw) < 4 or struct.unpack(">I", raw[:4])[0] != magic:
        got = raw[:4].hex() if len(raw) >= 4 else f"{len(raw)} bytes"
        raise DataError(f"The Fashion-MNIST file {path} has a bad IDX header (magic {got}, "
                        f"expected {magic:08x}); it is not the right file or it is corrupt. {FIX}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"The Fashion-MNIST file {path} is truncated inside its header. {FIX}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataError(f"The Fashion-MNIST file {path} is truncated or has trailing data: its "
                        f"header says {'x'.join(map(str, dims))} = {expected} bytes of data but it "
                        f"holds {len(raw) - header}. {FIX}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _decode_split(images_path, labels_path):
    images = _read_idx(images_path, IMAGE_MAGIC, 3)
    labels = _read_idx(labels_path, LABEL_MAGIC, 1)
    if images.shape[1:] != (SOURCE_SIZE, SOURCE_SIZE):
        raise DataError(f"The Fashion-MNIST file {images_path} holds {images.shape[1]}x"
                        f"{images.shape[2]} images, expected 28x28. {FIX}")
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                        f"{len(labels)} labels; the files do not belong together. {FIX}")
    if len(labels) and labels.max() >= len(CLASSES):
        raise DataError(f"The Fashion-MNIST file {labels_path} holds label {labels.max()}, "
                        f"expected 0..9. {FIX}")
    x = torch.zeros((len(images), 1, SIZE, SIZE), dtype=torch.uint8)
    x[:, 0, PAD:PAD + SOURCE_SIZE, PAD:PAD + SOURCE_SIZE] = torch.from_numpy(images.copy())
    return {"x": x, "y": torch.from_numpy(labels.astype(np.int64))}


def from_image(img):
    """An outside picture as a Fashion-MNIST example: grey levels, the item light on black as the
    dataset stores it. A 32x32 picture is taken as it is; any other is resized to the source's
    28x28 (bicubic) and padded with black, as the dataset's images are."""
    img = img.convert("L")
    if img.size == (SIZE, SIZE):
        return torch.as_tensor(np.array(img)).view(1, SIZE, SIZE)
    x = torch.zeros((1, SIZE, SIZE), dtype=torch.uint8)
    x[0, PAD:PAD + SOURCE_SIZE, PAD:PAD + SOURCE_SIZE] = torch.as_tensor(
        np.array(img.resize((SOURCE_SIZE, SOURCE_SIZE), Image.BICUBIC)))
    return x


@register_dataset("fashion-mnist", shape=(1, SIZE, SIZE), from_image=from_image)
def load(root=None, cache_dir=None):
    folder, found = _locate(root, cache_dir)
    splits, hashes, files = {}, {}, {}
    for split, (img_stem, lbl_stem) in FILES.items():
        img, lbl = found[img_stem], found[lbl_stem]
        hasher = Hasher()
        hasher.add_content(img)
        hasher.add_content(lbl)
        hashes[split] = hasher.hexdigest()
        key = f"fashion-mnist-{split}-pad{PAD}-{SIZE}-{hashes[split]}"
        files[split] = cache_path(cache_dir, key)
        data = cached(files[split], lambda img=img, lbl=lbl: _decode_split(img, lbl))
        splits[split] = Split(data["x"].contiguous(), data["y"].to(torch.int64).contiguous())

    meta = {
        "source": "Fashion-MNIST official IDX files",
        "source_dir": str(folder),
        "source_files": {s: [found[stem].name for stem in FILES[s]] for s in FILES},
        "source_size": [SOURCE_SIZE, SOURCE_SIZE],
        "crop": None,
        "pad": {"pixels": PAD, "value": 0, "sides": "all four"},
        "resize_filter": None,
        "size": SIZE,
        "split": "official train / t10k",
        "split_sizes": {s: len(splits[s]) for s in splits},
        "source_hash": hashes,
        "cache_files": {s: str(p) for s, p in files.items()},
    }
    return Dataset(name="fashion-mnist", kind="image", shape=(1, SIZE, SIZE),
                   train=splits["train"], test=splits["test"], valid=None,
                   label_names=list(CLASSES), meta=meta)
