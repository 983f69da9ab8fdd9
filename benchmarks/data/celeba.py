"""CelebA aligned faces at 64x64 with the 40 binary attributes, official partitions.

Pinned preprocessing: the full-width 178x178 square in the middle of each 178x218
aligned image (box 0,20,178,198, as ALI's Fuel pipeline and mimicry crop), then PIL
bicubic resize to 64x64. CelebA cannot be downloaded automatically (Google Drive quota,
licence), so the folder must be given as `root` or $CELEBA_ROOT.
"""
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from benchmarks.data.cache import Hasher, cache_path, file_listing, load_cached, save_cached
from benchmarks.data.registry import Dataset, Split, register_dataset
from benchmarks.core.errors import ConfigError, DataError

IMG_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
SOURCE_SIZE = (178, 218)  # (width, height) of every aligned image
CROP_BOX = (0, 20, 178, 198)  # PIL (left, top, right, bottom)
SIZE = 64
FILTER = Image.BICUBIC
SPLITS = {"train": 0, "valid": 1, "test": 2}  # list_eval_partition.txt codes
N_ATTRS = 40
CHUNK = 256  # files per worker task; one chunk or less is decoded in-process
PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
LAYOUT = (f"Expected layout (torchvision's CelebA folder): CELEBA_ROOT/{IMG_DIR}/000001.jpg ... "
          f"202599.jpg, CELEBA_ROOT/{ATTR_FILE} and CELEBA_ROOT/{PARTITION_FILE} (or the same "
          f"inside CELEBA_ROOT/celeba/). CelebA must be downloaded manually from the CelebA "
          f"project page {PAGE}: the \"Align&Cropped Images\" {IMG_DIR}.zip (unzip it), plus "
          f"Anno/{ATTR_FILE} and Eval/{PARTITION_FILE}; then set the CELEBA_ROOT environment "
          f"variable to that folder (or pass it as the dataset root).")


def _resolve_root(root):
    origin = "the dataset root"
    if root is None:
        root = os.environ.get("CELEBA_ROOT")
        origin = "$CELEBA_ROOT"
        if not root:
            raise DataError(f"No CelebA folder given: the CELEBA_ROOT environment variable is "
                            f"not set and no dataset root was passed. {LAYOUT}")
    base = Path(root).expanduser().resolve()
    for folder in (base, base / "celeba"):
        if (folder / IMG_DIR).is_dir():
            missing = [n for n in (ATTR_FILE, PARTITION_FILE) if not (folder / n).is_file()]
            if missing:
                raise DataError(f"The CelebA folder {folder} ({origin}) has {IMG_DIR}/ but is "
                                f"missing {' and '.join(missing)}. {LAYOUT}")
            return folder
    raise DataError(f"{base} ({origin}) is not a CelebA folder: neither it nor {base / 'celeba'} "
                    f"contains {IMG_DIR}/. {LAYOUT}")


def _bad_line(path, lineno, expected):
    return DataError(f"The CelebA file {path} is malformed at line {lineno} (expected "
                     f"{expected}); it is truncated or not the official file. Download it again "
                     f"from {PAGE}.")


def _read_partition(path):
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise _bad_line(path, lineno, "'000001.jpg 0' with partition 0, 1 or 2")
        rows.append((parts[0], int(parts[1])))
    return rows


def _read_attrs(path):
    lines = path.read_text().splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise _bad_line(path, 1, "the image count")
    names = lines[1].split()
    if len(names) != N_ATTRS:
        raise _bad_line(path, 2, f"{N_ATTRS} attribute names, found {len(names)}")
    attrs = {}
    for lineno, line in enumerate(lines[2:], 3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != N_ATTRS + 1 or any(v not in ("1", "-1") for v in parts[1:]):
            raise _bad_line(path, lineno, f"a file name and {N_ATTRS} values of 1 or -1")
        attrs[parts[0]] = [v == "1" for v in parts[1:]]
    if len(attrs) != int(lines[0]):
        raise DataError(f"The CelebA file {path} announces {int(lines[0])} images on line 1 but "
                        f"lists {len(attrs)}; it is truncated. Download it again from {PAGE}.")
    return names, attrs


def _decode_one(path):
    with Image.open(path) as img:
        if img.size != SOURCE_SIZE:
            raise ValueError(f"it is {img.size[0]}x{img.size[1]}, expected 178x218: only the "
                             f"aligned-and-cropped images ({IMG_DIR}) are supported")
        img = img.convert("RGB").crop(CROP_BOX).resize((SIZE, SIZE), FILTER)
    return np.asarray(img).transpose(2, 0, 1)


def _decode_chunk(paths):
    """Worker: (k, 3, 64, 64) uint8, or ("error", path, reason) for the first bad file."""
    out = np.empty((len(paths), 3, SIZE, SIZE), dtype=np.uint8)
    for i, path in enumerate(paths):
        try:
            out[i] = _decode_one(path)
        except Exception as e:  # reported by the parent as a DataError naming the file
            return ("error", path, f"{type(e).__name__}: {e}")
    return out


def _workers():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _decode_all(paths, desc):
    """Decode JPEGs into one uint8 (N, 3, 64, 64) tensor, in chunks on a process pool."""
    x = torch.empty((len(paths), 3, SIZE, SIZE), dtype=torch.uint8)
    chunks = [paths[i:i + CHUNK] for i in range(0, len(paths), CHUNK)]
    pool = None
    if len(chunks) > 1:
        pool = ProcessPoolExecutor(max_workers=min(_workers(), len(chunks)))
        results = pool.map(_decode_chunk, chunks)
    else:
        results = map(_decode_chunk, chunks)
    try:
        with tqdm(total=len(paths), desc=desc, unit="img") as bar:
            start = 0
            for chunk, result in zip(chunks, results):
                if isinstance(result, tuple):
                    _, path, reason = result
                    raise DataError(
                        f"Cannot decode the CelebA image {path} ({reason}). The file is corrupt "
                        f"or not a JPEG: extract it again from {IMG_DIR}.zip (CelebA project "
                        f"page {PAGE}).")
                x[start:start + len(chunk)] = torch.from_numpy(result)
                start += len(chunk)
                bar.update(len(chunk))
    finally:
        if pool is not None:  # on error, drop the queued chunks instead of decoding them all
            pool.shutdown(wait=True, cancel_futures=True)
    return x


def _build(folder, tables, split, limit):
    names, attrs, partition, present = tables
    files = [f for f, code in partition if code == SPLITS[split]]
    if limit is not None:
        files = files[:limit]
    missing = [f for f in files if f not in present]
    if missing:
        raise DataError(f"{len(missing)} image(s) of the CelebA {split} split listed in "
                        f"{folder / PARTITION_FILE} are missing from {folder / IMG_DIR}, the first "
                        f"being {missing[0]}. The image folder is incomplete: extract "
                        f"{IMG_DIR}.zip again (CelebA project page {PAGE}).")
    x = _decode_all([str(folder / IMG_DIR / f) for f in files], desc=f"celeba64 {split}")
    y = torch.tensor([attrs[f] for f in files], dtype=torch.int64).reshape(len(files), N_ATTRS)
    return {"x": x, "y": y, "files": files, "attr_names": names}


def _read_tables(folder, listing):
    names, attrs = _read_attrs(folder / ATTR_FILE)
    partition = _read_partition(folder / PARTITION_FILE)
    no_attrs = [f for f, _ in partition if f not in attrs]
    if no_attrs:
        raise DataError(f"{len(no_attrs)} image(s) listed in {folder / PARTITION_FILE} have no row "
                        f"in {folder / ATTR_FILE}, the first being {no_attrs[0]}. The two files do "
                        f"not belong together: download both again from {PAGE}.")
    return names, attrs, partition, {name for name, _ in listing}


def from_image(img):
    """An outside picture as a CelebA example: RGB, its central square (for an aligned 178x218
    image that is CROP_BOX itself), resized to 64x64 with the dataset's filter; a 64x64 picture
    comes back as it is (PIL leaves a resize to the same size alone)."""
    img = img.convert("RGB")
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((SIZE, SIZE), FILTER)
    return torch.as_tensor(np.array(img).transpose(2, 0, 1).copy())


@register_dataset("celeba64", shape=(3, SIZE, SIZE), from_image=from_image)
def load(root=None, cache_dir=None, limit=None):
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"celeba64 option 'limit' must be a positive integer or None, "
                          f"got {limit!r}.")
    folder = _resolve_root(root)
    listing = file_listing(folder / IMG_DIR)
    hasher = Hasher()
    hasher.add_listing(listing)
    hasher.add_content(folder / ATTR_FILE)
    hasher.add_content(folder / PARTITION_FILE)
    digest = hasher.hexdigest()

    crop = "_".join(map(str, CROP_BOX))
    tail = f"-limit{limit}" if limit is not None else ""
    tables, data, files = None, {}, {}
    for split in SPLITS:
        key = f"celeba64-{split}-crop{crop}-bicubic-{SIZE}{tail}-{digest}"
        files[split] = cache_path(cache_dir, key)
        obj = load_cached(files[split], required=("x", "y", "files", "attr_names"))
        if obj is None:
            if tables is None:  # parse the annotation files only when something must be built
                tables = _read_tables(folder, listing)
            obj = _build(folder, tables, split, limit)
            save_cached(files[split], obj)
        data[split] = obj

    splits = {s: Split(d["x"].contiguous(), d["y"].to(torch.int64).contiguous())
              for s, d in data.items()}
    meta = {
        "source": "CelebA img_align_celeba (aligned and cropped JPEGs), torchvision layout",
        "source_dir": str(folder),
        "source_size": list(SOURCE_SIZE),
        "crop": "178x178 full-width square centred in the 178x218 image (ALI/Fuel, mimicry)",
        "crop_box": list(CROP_BOX),
        "resize_filter": "PIL.Image.BICUBIC",
        "size": SIZE,
        "split": f"official {PARTITION_FILE}: 0=train, 1=valid, 2=test",
        "split_sizes": {s: len(sp) for s, sp in splits.items()},
        "limit": limit,
        "labels": f"{N_ATTRS} attributes of {ATTR_FILE}, -1 -> 0, 1 -> 1",
        "source_hash": {s: digest for s in SPLITS},
        "cache_files": {s: str(p) for s, p in files.items()},
    }
    return Dataset(name="celeba64", kind="image", shape=(3, SIZE, SIZE), train=splits["train"],
                   test=splits["test"], valid=splits["valid"],
                   label_names=list(data["train"]["attr_names"]), meta=meta)
