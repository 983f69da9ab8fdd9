"""Pictures from outside a dataset, prepared as its examples: what `encode --images` feeds a
trained encoder.

Each image dataset registers its own preparation (`from_image` in its loader's module: the
grey conversion, crop, resize and padding its examples get), so an encoder sees pictures shaped
like the data it was trained on. The result is uint8 in (N, C, H, W), exactly as a Dataset
stores its images; the runtime maps it to [-1, 1] as it does every batch.
"""
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from benchmarks.core.errors import UserError
from benchmarks.data.registry import image_preparation


def image_files(folder):
    """The picture files directly inside `folder`, sorted by name: those whose extension PIL reads."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--images {folder} is not a folder: give a folder that holds the pictures to encode "
                        "(PNG, JPEG, ...).")
    readable = set(Image.registered_extensions())
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in readable)
    if not files:
        raise UserError(f"The folder {folder} holds no pictures (files with an extension PIL reads, such as "
                        ".png or .jpg); put the images to encode directly inside it.")
    return files


def read_images(folder, dataset, shape):
    """(uint8 tensor (N, *shape), the files in that order) of the pictures in `folder`, each
    prepared as an example of `dataset`, whose examples have `shape`."""
    if len(shape) != 3:
        raise UserError(f"Runs on {dataset} encode {'-'.join(map(str, shape))}-dimensional points, not pictures; "
                        "encode points with the Python API: benchmarks.load_run(RUN_DIR).encode(points).")
    prepare = image_preparation(dataset) or _resized(shape)
    files = image_files(folder)
    out = torch.empty((len(files), *shape), dtype=torch.uint8)
    for i, path in enumerate(tqdm(files, desc="reading images", leave=False, disable=len(files) < 500)):
        try:
            with Image.open(path) as img:
                x = prepare(img)
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise UserError(f"{path} cannot be read as a picture ({type(e).__name__}: {e}); remove it from the "
                            "folder or replace it.") from None
        if tuple(x.shape) != tuple(shape):  # a dataset's preparation that does not give its own shape
            raise UserError(f"{path} was prepared as a {dataset} example of shape {tuple(x.shape)}, but the run's "
                            f"data shape is {tuple(shape)}.")
        out[i] = x
    return out, files


def _resized(shape):
    """The preparation of an image dataset that registers none: its channels (grey or RGB) and
    size, resized bicubically."""
    c, h, w = shape
    if c not in (1, 3):
        raise UserError(f"The run's images have {c} channels; only grey (1) and RGB (3) pictures can be prepared "
                        "without the dataset's own from_image.")

    def prepare(img):
        img = img.convert("L" if c == 1 else "RGB")
        if img.size != (w, h):
            img = img.resize((w, h), Image.BICUBIC)
        x = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        return x.view(h, w, c).permute(2, 0, 1).contiguous()

    return prepare
