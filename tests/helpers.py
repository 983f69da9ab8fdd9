"""The plain helpers and constants the tests share; pytest's fixtures are in conftest.py, where
pytest finds them. Import what you need: `from tests.helpers import ROOT, make_celeba`.

- the repository and the harness: ROOT, link_shared_caches, write_plugin, assert_user_error, no_network
- the models: batch, snapshot, hand_simultaneous_step, DWeightGrads, expected_d_weight_grads
- the data sets: tiny, deterministic stand-ins for the real files, in their official formats
  (make_fashion_mnist, make_celeba and their pieces)
"""
import gzip
import re
import socket
import struct
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = Path(__file__).resolve().parent.parent  # the repository: tests/ sits at its top


# --- the harness ---------------------------------------------------------------------------------

def link_shared_caches(cache, shared):
    """Make `cache` a BIGAN_BENCH_CACHE folder whose session-wide caches ({name: folder}, conftest's
    _shared_caches) are links to the shared folders; every other cache in it is its own."""
    cache.mkdir(parents=True, exist_ok=True)
    for name, folder in shared.items():
        (cache / name).symlink_to(folder, target_is_directory=True)
    return cache


def write_plugin(path, body):
    """A plugin module at `path`: `body` after the imports a plugin model usually needs."""
    path.write_text("import math\nimport torch\nimport models\nfrom models.bigan import BiGAN\n\n" + body)
    return path


def assert_user_error(result, *needles):
    """`result` (the `cli` fixture's (code, out, err)) is a user error: exit code 2, an `error: ` line,
    no traceback, and every needle in the message. Returns the message."""
    code, _, err = result
    assert code == 2, err
    # a line of its own on the terminal: after a newline, or after the \r that clears a progress bar
    assert "Traceback" not in err and re.search(r"(?:^|[\r\n])error: ", err), err
    for n in needles:
        assert n in err, (n, err)
    return err


def no_network(monkeypatch, socket_error=AssertionError):
    """Downloads always fail loudly; sockets raise `socket_error` (OSError = an offline machine)."""
    def refuse(*args, **kwargs):
        raise AssertionError("the network was touched")

    def offline(*args, **kwargs):
        raise socket_error("network unreachable (test)")

    import torch_fidelity.feature_extractor_inceptionv3 as fe
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(fe, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(socket, "create_connection", offline)
    monkeypatch.setattr(socket.socket, "connect", offline)


# --- the models ----------------------------------------------------------------------------------

def batch(kw, n, seed=0):
    """Random real data for a model built with `kw`: points ~ N(0, 1), images in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    if len(kw["data_shape"]) == 1:
        return torch.randn(n, *kw["data_shape"], generator=g)
    return torch.rand(n, *kw["data_shape"], generator=g) * 2 - 1


def snapshot(module, buffers=False):
    """Copies of the parameters (and, with `buffers`, BN statistics), keyed by name."""
    items = module.state_dict().items() if buffers else module.named_parameters()
    return {n: t.detach().clone() for n, t in items}


def hand_simultaneous_step(ref, loss_d, loss_ge):
    """The reference update written out: D's and (G, E)'s gradients at the same parameters,
    then both Adam steps (the models' "d" and "ge" optimisers)."""
    d_params = list(ref.D.parameters())
    ge_params = list(ref.G.parameters()) + list(ref.E.parameters())
    gd = torch.autograd.grad(loss_d, d_params, retain_graph=True)
    gge = torch.autograd.grad(loss_ge, ge_params)
    for p, g in zip(d_params + ge_params, gd + gge):
        p.grad = g
    ref.optimizers["d"].step()
    ref.optimizers["ge"].step()


# D passes (calls of D's convolution stack) per D update of each built-in model whose update is a
# plain backward: BiGAN scores real and fake pairs in two calls, BiGAN-QP's critic embeds both
# pairs with one trunk, the post-hoc row's GAN scores x and G(z) apart; ALI and BigBiGAN
# concatenate. bigan-wgan's penalty differentiates D twice, so it is compared between paths only.
D_PASSES_PER_UPDATE = {"bigan": 2, "ali": 1, "bigan-qp-simple": 2, "bigan-qp-simple-nosg": 2, "bigan-qp-full": 2,
                       "bigan-qp-full-nosg": 2, "bigbigan": 1, "gan-posthoc-encoder": 2, "bigan-wgan-nogp": 2}


class DWeightGrads(TorchDispatchMode):
    """Counts the weight gradients computed for the convolutions of `net` (D): one per D pass that
    D's update differentiates, on every path if no backward computes one it drops. Sees compiled
    code too (`ignore_compile_internals`: dynamo compiles as usual and the compiled graphs' aten
    ops reach the mode; with aot_eager, every op). A convolution's weight is D's when it is one of
    D's parameters or computed from D's parameters and buffers alone (a spectral-normalised or
    bf16 copy); those are kept alive here, so no other tensor takes their memory meanwhile."""

    def __init__(self, net):
        super().__init__()
        self.count, self._derived = 0, {}
        self._own = [*net.parameters(), *net.buffers()]  # the objects: a path may move their data (channels_last)

    @classmethod
    def ignore_compile_internals(cls):
        return True

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        own = {t.untyped_storage().data_ptr() for t in self._own} | self._derived.keys()

        def ours(t):
            return isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() in own

        if func is torch.ops.aten.convolution_backward.default:
            self.count += bool(args[-1][1] and ours(args[2]))
        else:
            tensors = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
            if tensors and all(ours(t) for t in tensors):
                for t in pytree.tree_leaves(out):
                    if isinstance(t, torch.Tensor):
                        self._derived[t.untyped_storage().data_ptr()] = t
        return out


def expected_d_weight_grads(name, model, steps):
    """D weight gradients the first `steps` steps must compute, or None for a model without a
    plain D update in D_PASSES_PER_UPDATE."""
    if name not in D_PASSES_PER_UPDATE:
        return None
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.D.modules())
    return model.d_updates(steps) * D_PASSES_PER_UPDATE[name] * convs


# --- the data sets -------------------------------------------------------------------------------

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
