from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmarks.data import Dataset, available_datasets, load_dataset, register_dataset
from benchmarks.data import celeba, fashion_mnist, registry
from benchmarks.core.errors import ConfigError, DataError
from tests.helpers import CELEBA_ATTRS, fashion_mnist_arrays, make_celeba, make_fashion_mnist


# ---------------------------------------------------------------- registry

def test_unknown_name_lists_close_matches():
    assert {"digits", "fashion-mnist", "celeba64", "toy2d"} <= set(available_datasets())
    with pytest.raises(ConfigError) as e:
        load_dataset("fashion_mnist")
    assert "Did you mean fashion-mnist?" in str(e.value) and "toy2d" in str(e.value)


@pytest.mark.parametrize("name", ["digits", "", "   ", "two words", None])
def test_bad_or_duplicate_registration_raises(name):
    with pytest.raises(ValueError):
        register_dataset(name)(lambda root=None, cache_dir=None: None)


def test_unknown_option_raises_config_error(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_dataset("toy2d", cache_dir=tmp_path, varient="ring8")
    assert "'varient'" in str(e.value) and "variant" in str(e.value)
    with pytest.raises(ConfigError):
        load_dataset("digits", cache_dir=tmp_path, limit=3)


def test_custom_loader_gets_options_and_default_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_LOADERS", dict(registry._LOADERS))
    monkeypatch.setenv("BIGAN_BENCH_CACHE", str(tmp_path))
    seen = {}

    @register_dataset("custom")
    def _load(root=None, cache_dir=None, size=3):
        seen.update(root=root, cache_dir=cache_dir, size=size)
        return "ok"

    assert load_dataset("custom", root="r", size=5) == "ok"
    assert seen == {"root": "r", "cache_dir": tmp_path, "size": 5}


def _boom(*args, **kwargs):
    raise AssertionError("decoded although cached")


# ---------------------------------------------------------------- digits

def test_digits_shapes_split_and_determinism(tmp_path):
    d = load_dataset("digits", cache_dir=tmp_path)
    assert isinstance(d, Dataset) and d.kind == "image" and d.shape == (1, 16, 16)
    assert d.valid is None and d.label_names == [str(i) for i in range(10)]
    assert d.train.x.shape == (1347, 1, 16, 16) and d.test.x.shape == (450, 1, 16, 16)
    for s in (d.train, d.test):
        assert s.x.dtype == torch.uint8 and s.x.is_contiguous() and s.y.dtype == torch.int64
    assert d.train.x.max() == 255 and d.train.x.min() == 0
    n_train, n_test = (torch.bincount(s.y, minlength=10).double() for s in (d.train, d.test))
    assert ((n_test / (n_train + n_test) - 0.25).abs() < 0.02).all()  # stratified, all classes
    again = load_dataset("digits", cache_dir=tmp_path)
    assert torch.equal(again.train.x, d.train.x) and torch.equal(again.test.y, d.test.y)
    assert d.meta["split_sizes"] == {"train": 1347, "test": 450}


# ---------------------------------------------------------------- fashion-mnist

@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_fixture(tmp_path, gz):
    root = make_fashion_mnist(tmp_path / "fm", n_train=64, n_test=32, gz=gz)
    d = load_dataset("fashion-mnist", root=root, cache_dir=tmp_path / "cache")
    assert d.shape == (1, 32, 32) and d.kind == "image" and len(d.label_names) == 10
    assert d.train.x.shape == (64, 1, 32, 32) and d.test.x.shape == (32, 1, 32, 32)
    for split, n, seed in ((d.train, 64, 0), (d.test, 32, 1)):
        images, labels = fashion_mnist_arrays(n, seed)
        assert split.x.dtype == torch.uint8 and split.x.is_contiguous()
        assert torch.equal(split.x[:, 0, 2:30, 2:30], torch.from_numpy(images))
        border = split.x.clone()
        border[:, :, 2:30, 2:30] = 0
        assert border.eq(0).all()  # the 2-px padding is zero
        assert split.y.dtype == torch.int64 and split.y.tolist() == labels.tolist()


def test_fashion_mnist_root_from_env(tmp_path, monkeypatch):
    make_fashion_mnist(tmp_path / "data" / "fashion-mnist", n_train=20, n_test=10)
    monkeypatch.setenv("BIGAN_BENCH_DATA", str(tmp_path / "data"))
    d = load_dataset("fashion-mnist", cache_dir=tmp_path / "cache")
    assert len(d.train.x) == 20 and len(d.test.x) == 10
    make_fashion_mnist(tmp_path / "flat", n_train=30, n_test=10)  # files directly in it
    monkeypatch.setenv("BIGAN_BENCH_DATA", str(tmp_path / "flat"))
    assert len(load_dataset("fashion-mnist", cache_dir=tmp_path / "cache").train.x) == 30


def test_fashion_mnist_missing_or_wrong_file_names_it(tmp_path):
    root = make_fashion_mnist(tmp_path / "fm")
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_dataset("fashion-mnist", root=root, cache_dir=tmp_path / "cache")
    root = make_fashion_mnist(tmp_path / "fm2", gz=False)
    images, labels = root / "train-images-idx3-ubyte", root / "train-labels-idx1-ubyte"
    images.write_bytes(labels.read_bytes())  # a labels file where images belong
    with pytest.raises(DataError, match=f"{images} has a bad IDX header"):
        load_dataset("fashion-mnist", root=root, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_truncated_file_names_it(tmp_path, gz):
    root = make_fashion_mnist(tmp_path / "fm", gz=gz)
    path = root / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=str(path)):
        load_dataset("fashion-mnist", root=root, cache_dir=tmp_path / "cache")


def test_fashion_mnist_cache_hit_and_corrupt_cache(tmp_path, monkeypatch):
    root = make_fashion_mnist(tmp_path / "fm")
    first = load_dataset("fashion-mnist", root=root, cache_dir=tmp_path / "cache")
    files = first.meta["cache_files"]
    assert all(Path(f).is_file() and Path(f).parent == tmp_path / "cache" / "datasets"
               for f in files.values())
    assert Path(files["train"]).name.startswith("fashion-mnist-train-pad2-32-")
    monkeypatch.setattr(fashion_mnist, "_decode_split", _boom)
    second = load_dataset("fashion-mnist", root=root, cache_dir=tmp_path / "cache")
    assert torch.equal(second.train.x, first.train.x) and torch.equal(second.test.y, first.test.y)
    monkeypatch.undo()
    Path(files["train"]).write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable dataset cache"):
        third = load_dataset("fashion-mnist", root=root, cache_dir=tmp_path / "cache")
    assert torch.equal(third.train.x, first.train.x)


def test_fashion_mnist_nothing_found_explains_where(tmp_path, monkeypatch):
    monkeypatch.delenv("BIGAN_BENCH_DATA", raising=False)
    monkeypatch.setattr(fashion_mnist, "SYSTEM_DIR", tmp_path / "nowhere")
    monkeypatch.setattr(fashion_mnist, "_download", lambda folder: 1 / 0)  # "offline"
    with pytest.raises(DataError) as e:
        load_dataset("fashion-mnist", cache_dir=tmp_path / "cache")
    msg = str(e.value)
    assert str(tmp_path / "nowhere") in msg and "train-images-idx3-ubyte.gz" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "zalandoresearch" in msg


@pytest.mark.skipif(not (fashion_mnist.SYSTEM_DIR / "t10k-labels-idx1-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_system_files(tmp_path):
    d = load_dataset("fashion-mnist", root=fashion_mnist.SYSTEM_DIR, cache_dir=tmp_path)
    assert d.meta["split_sizes"] == {"train": 60000, "test": 10000}
    assert d.train.y[:4].tolist() == [9, 0, 0, 3]  # the official first labels


# ---------------------------------------------------------------- celeba64

def _pipeline(path):  # the pinned preprocessing, written out independently
    img = Image.open(path).convert("RGB").crop((0, 20, 178, 198)).resize((64, 64), Image.BICUBIC)
    return torch.from_numpy(np.asarray(img).transpose(2, 0, 1).copy())


def test_celeba_fixture(tmp_path):
    root = make_celeba(tmp_path / "celeba", n=40)
    d = load_dataset("celeba64", root=root, cache_dir=tmp_path / "cache")
    assert d.kind == "image" and d.shape == (3, 64, 64) and d.label_names == CELEBA_ATTRS
    assert d.meta["split_sizes"] == {"train": 24, "valid": 8, "test": 8}
    assert d.meta["crop_box"] == [0, 20, 178, 198] and "BICUBIC" in d.meta["resize_filter"]
    for split in (d.train, d.valid, d.test):
        assert split.x.dtype == torch.uint8 and split.x.is_contiguous()
        assert split.x.shape[1:] == (3, 64, 64)
        assert split.y.dtype == torch.int64 and split.y.shape == (len(split.x), 40)
        assert set(split.y.unique().tolist()) <= {0, 1}
    img = root / "img_align_celeba"
    assert torch.equal(d.train.x[0], _pipeline(img / "000001.jpg"))
    assert torch.equal(d.valid.x[0], _pipeline(img / "000025.jpg"))
    assert torch.equal(d.test.x[-1], _pipeline(img / "000040.jpg"))
    row = (root / "list_attr_celeba.txt").read_text().splitlines()[2 + 24].split()
    assert row[0] == "000025.jpg"
    assert d.valid.y[0].tolist() == [1 if v == "1" else 0 for v in row[1:]]


def test_celeba_cache_hit_limit_and_key_change(tmp_path, monkeypatch):
    root = make_celeba(tmp_path / "celeba", n=40)
    first = load_dataset("celeba64", root=root, cache_dir=tmp_path / "cache")
    name = Path(first.meta["cache_files"]["train"]).name
    assert name.startswith("celeba64-train-crop0_20_178_198-bicubic-64-") and name.endswith(".pt")
    monkeypatch.setattr(celeba, "_decode_all", _boom)
    second = load_dataset("celeba64", root=root, cache_dir=tmp_path / "cache")
    assert torch.equal(second.valid.x, first.valid.x) and torch.equal(second.test.y, first.test.y)
    monkeypatch.undo()
    small = load_dataset("celeba64", root=root, cache_dir=tmp_path / "cache", limit=5)
    assert small.meta["split_sizes"] == {"train": 5, "valid": 5, "test": 5}
    assert "-limit5-" in small.meta["cache_files"]["train"]
    assert torch.equal(small.train.x, first.train.x[:5])
    make_celeba(root, n=41)  # one more image: a new listing, so a new key
    grown = load_dataset("celeba64", root=root, cache_dir=tmp_path / "cache")
    assert grown.meta["cache_files"]["train"] != first.meta["cache_files"]["train"]
    assert sum(grown.meta["split_sizes"].values()) == 41


def test_celeba_process_pool_matches_inline(tmp_path, monkeypatch):
    root = make_celeba(tmp_path / "celeba", n=40)
    inline = load_dataset("celeba64", root=root, cache_dir=tmp_path / "a")
    monkeypatch.setattr(celeba, "CHUNK", 4)  # 24 train images -> 6 chunks on the pool
    pooled = load_dataset("celeba64", root=root, cache_dir=tmp_path / "b")
    assert torch.equal(pooled.train.x, inline.train.x)
    (root / "img_align_celeba" / "000007.jpg").write_bytes(b"garbage, not a JPEG" * 50)
    with pytest.raises(DataError, match="000007.jpg"):
        load_dataset("celeba64", root=root, cache_dir=tmp_path / "c")


def test_celeba_corrupt_or_missing_images_named(tmp_path):
    root = make_celeba(tmp_path / "celeba", n=12)
    (root / "img_align_celeba" / "000003.jpg").write_bytes(b"\xff\xd8 truncated JPEG" * 100)
    with pytest.raises(DataError, match="000003.jpg"):  # decoded in-process (one chunk)
        load_dataset("celeba64", root=root, cache_dir=tmp_path / "cache")
    (root / "img_align_celeba" / "000002.jpg").unlink()
    (root / "img_align_celeba" / "000004.jpg").unlink()
    with pytest.raises(DataError, match=r"2 image\(s\).*000002.jpg"):
        load_dataset("celeba64", root=root, cache_dir=tmp_path / "cache")


def test_celeba_missing_folder_or_files(tmp_path, monkeypatch):
    monkeypatch.delenv("CELEBA_ROOT", raising=False)
    with pytest.raises(DataError, match="CELEBA_ROOT"):
        load_dataset("celeba64", cache_dir=tmp_path)
    with pytest.raises(DataError, match="CELEBA_ROOT") as e:
        load_dataset("celeba64", root=tmp_path / "nope", cache_dir=tmp_path)
    assert "img_align_celeba" in str(e.value) and "list_eval_partition.txt" in str(e.value)
    root = make_celeba(tmp_path / "celeba", n=3)
    (root / "list_attr_celeba.txt").unlink()
    with pytest.raises(DataError, match="list_attr_celeba.txt"):
        load_dataset("celeba64", root=root, cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="limit"):
        load_dataset("celeba64", root=root, cache_dir=tmp_path, limit=0)


def test_celeba_root_env_pointing_at_parent(tmp_path, monkeypatch):
    make_celeba(tmp_path / "parent" / "celeba", n=6)
    monkeypatch.setenv("CELEBA_ROOT", str(tmp_path / "parent"))
    d = load_dataset("celeba64", cache_dir=tmp_path / "cache")
    assert d.meta["split_sizes"] == {"train": 4, "valid": 1, "test": 1}
    assert d.meta["source_dir"] == str(tmp_path / "parent" / "celeba")


# ---------------------------------------------------------------- toy2d

@pytest.mark.parametrize("variant,n_modes,std", [("grid25", 25, 0.05), ("ring8", 8, 0.02)])
def test_toy2d_variants(tmp_path, variant, n_modes, std):
    d = load_dataset("toy2d", cache_dir=tmp_path, variant=variant, n_train=20_000, n_test=2_000)
    assert d.kind == "points" and d.shape == (2,) and d.valid is None
    assert d.train.x.shape == (20_000, 2) and d.train.x.dtype == torch.float32
    assert d.test.x.shape == (2_000, 2) and d.train.y.dtype == torch.int64
    assert d.meta["variant"] == variant and d.meta["std"] == std and d.test.y.max() < n_modes
    centres = torch.tensor(d.meta["centres"])
    assert centres.shape == (n_modes, 2) and len(d.label_names) == n_modes
    assert 0 <= d.train.y.min() and d.train.y.max() < n_modes
    counts = torch.bincount(d.train.y, minlength=n_modes).double()
    assert (counts / counts.mean() - 1).abs().max() < 0.15  # equal weights
    for k in range(n_modes):
        pts = d.train.x[d.train.y == k]
        assert (pts.mean(0) - centres[k]).abs().max() < 5 * std / len(pts) ** 0.5 + 1e-4
        assert ((pts - centres[k]).std(0) - std).abs().max() < 0.1 * std
    if variant == "ring8":
        assert torch.allclose(centres.norm(dim=1), torch.full((8,), 2.0))
    else:
        assert sorted(set(centres[:, 0].tolist())) == [-4, -2, 0, 2, 4]


def test_toy2d_deterministic_and_validated(tmp_path):
    a = load_dataset("toy2d", cache_dir=tmp_path, n_train=1000, n_test=500)
    torch.manual_seed(99)  # the run seed must not matter
    b = load_dataset("toy2d", cache_dir=tmp_path, n_train=1000, n_test=500)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.x[:500], a.test.x)  # train and test use different seeds
    assert a.meta["variant"] == "grid25"
    with pytest.raises(ConfigError, match="ring8"):
        load_dataset("toy2d", cache_dir=tmp_path, variant="ring9")
    with pytest.raises(ConfigError, match="n_train"):
        load_dataset("toy2d", cache_dir=tmp_path, n_train=0)
