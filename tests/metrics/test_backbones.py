"""The LPIPS and DINOv2 back ends, offline, as tests/metrics/test_inception.py does Inception: randomly
initialised state dicts of the real architectures (VGG16's convolutions with LPIPS's linear layers;
DINOv2's smallest ViT, S/14, standing in for L/14, in the layout of the released DINOv2 files),
the weights' resolution order, and the harness's columns: filled when the weights are found, empty
with the reason in the protocol when not, and a named path that is missing refused before anything
trains."""
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import metrics
from benchmarks.config import BACKFILL, backfilled, load_config
from benchmarks.core.errors import ConfigError
from metrics import dinov2, lpips
from tests.helpers import no_network

SMALL = "dinov2-vit-s-14"  # the architecture of the tests' random file
# torch-fidelity's model -> DINOv2's (embed_dim, depth, num_heads) (Oquab et al. 2023, table 17)
ARCHS = {"dinov2-vit-s-14": (384, 12, 6), "dinov2-vit-l-14": (1024, 24, 16)}


def official_dinov2_state_dict(model, *, device=None, seed=0):
    """Random tensors under the names and shapes of a released DINOv2 *_pretrain.pth file: the
    DinoVisionTransformer facebookresearch/dinov2's hub builds (img_size 518, so 37 x 37 + 1 position
    embeddings; layer scale; a mask token; MLP feed-forward). Written from upstream's layout, not from
    timm's model, so that loading it tests timm's conversion; test_timms_dinov2_computes_what_upstreams_
    hub_model_does checks it against upstream's own state dict where the hub cache holds the code."""
    d, depth, _ = ARCHS[model]
    shapes = {"cls_token": (1, 1, d), "pos_embed": (1, 1 + 37 * 37, d), "mask_token": (1, d),
              "patch_embed.proj.weight": (d, 3, 14, 14), "patch_embed.proj.bias": (d,)}
    for i in range(depth):
        for name, shape in (("norm1.weight", (d,)), ("norm1.bias", (d,)), ("attn.qkv.weight", (3 * d, d)),
                            ("attn.qkv.bias", (3 * d,)), ("attn.proj.weight", (d, d)), ("attn.proj.bias", (d,)),
                            ("ls1.gamma", (d,)), ("norm2.weight", (d,)), ("norm2.bias", (d,)),
                            ("mlp.fc1.weight", (4 * d, d)), ("mlp.fc1.bias", (4 * d,)),
                            ("mlp.fc2.weight", (d, 4 * d)), ("mlp.fc2.bias", (d,)), ("ls2.gamma", (d,))):
            shapes[f"blocks.{i}.{name}"] = shape
    shapes.update({"norm.weight": (d,), "norm.bias": (d,)})
    if device == "meta":
        return {k: torch.empty(shape, device="meta") for k, shape in shapes.items()}
    g = torch.Generator().manual_seed(seed)
    around_one = ("norm1.weight", "norm2.weight", "norm.weight", "gamma")  # the norms' and layer scales
    return {k: torch.randn(shape, generator=g) * 0.02 + (1.0 if k.endswith(around_one) else 0.0)
            for k, shape in shapes.items()}


@pytest.fixture(scope="module")
def lpips_weights(tmp_path_factory):
    """A folder as --lpips-weights wants it: VGG16's convolutions (torchvision's `features.*` keys;
    the classifier LPIPS never reads is left out) and the five LPIPS linear layers, all random."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("lpips")
    vgg = make_layers(cfgs["D"])
    torch.save({f"features.{k}": v for k, v in vgg.state_dict().items()}, folder / lpips.VGG16_FILE)
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(lpips.CHANNELS)},
               folder / lpips.LPIPS_FILE)
    return folder


@pytest.fixture(scope="module")
def dinov2_weights(tmp_path_factory):
    """A random DINOv2 ViT-S/14 state dict in the official files' layout, under the file name the
    hub would cache it by."""
    path = tmp_path_factory.mktemp("dinov2") / dinov2.weights_file(SMALL)
    torch.save(official_dinov2_state_dict(SMALL), path)
    return path


@pytest.fixture
def small_dinov2(monkeypatch):
    """DINOv2 S/14 in place of L/14, on 28 px inputs (2 x 2 patches) in place of 224."""
    from torch_fidelity.feature_extractor_dinov2 import FeatureExtractorDinoV2

    monkeypatch.setattr(dinov2, "MODEL", SMALL)
    monkeypatch.setattr(FeatureExtractorDinoV2, "INPUT_IMAGE_SIZE", 28)


def _images(n, channels=1, size=16, seed=0):
    return torch.randint(0, 256, (n, channels, size, size), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


def test_the_files_and_names_are_torch_fidelitys_and_torchvisions():
    import torchvision
    from torch_fidelity.feature_extractor_dinov2 import MODEL_METADATA
    from torch_fidelity.sample_similarity_lpips import URL_VGG16_LPIPS

    assert lpips.LPIPS_URL == URL_VGG16_LPIPS and lpips.LPIPS_URL.endswith("/" + lpips.LPIPS_FILE)
    assert lpips.VGG16_URL == torchvision.models.VGG16_Weights.IMAGENET1K_V1.url
    assert lpips.VGG16_URL.endswith("/" + lpips.VGG16_FILE)
    for model in ("dinov2-vit-s-14", "dinov2-vit-b-14", "dinov2-vit-l-14"):
        assert dinov2.hub_name(model) == MODEL_METADATA[model]
    assert dinov2.MODEL == "dinov2-vit-l-14" and dinov2.weights_file() == "dinov2_vitl14_pretrain.pth"
    with torch.device("meta"):  # the VGG16 LPIPS reads is torchvision's vgg16().features, key for key
        full = torchvision.models.vgg16(weights=None)
        shapes = {f"features.{k}": v.shape for k, v in lpips._vgg16_layers().state_dict().items()}
    assert shapes == {k: v.shape for k, v in full.state_dict().items() if k.startswith("features.")}


def test_lpips_loads_a_given_folder_offline_and_scores_pairs(lpips_weights, monkeypatch):
    no_network(monkeypatch)
    net, reason = metrics.load_lpips(lpips_weights)
    assert reason is None and net.backbone.startswith("lpips-vgg16-w") and not net.training
    assert net.weights_sha256[lpips.VGG16_FILE] == metrics.inception.file_sha256(lpips_weights / lpips.VGG16_FILE)
    assert net.sample_similarity_resize == lpips.RESIZE == 64
    net.sample_similarity_resize = 32  # a quarter of the pixels: the CPU's time, not the point of the test
    a, b = _images(3), _images(3, seed=1)
    d = metrics.lpips_distance(a, b, net, "cpu", batch_size=2)  # the batches cut the pairs up
    assert d.shape == (3,) and d.dtype == torch.float64 and torch.isfinite(d).all() and (d > 0).all()
    assert metrics.lpips_distance(a, a, net).abs().max() == 0  # identical images: distance 0
    rgb = metrics.lpips_distance(a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1), net)
    torch.testing.assert_close(rgb, d)  # grey is the 3-channel repeat
    torch.testing.assert_close(metrics.lpips_distance(b, a, net), d)  # symmetric
    with pytest.raises(ValueError, match="uint8"):
        metrics.lpips_distance(a.float(), b.float(), net)
    with pytest.raises(ValueError, match="equal"):
        metrics.lpips_distance(a, b[:2], net)


def test_dinov2_loads_a_given_file_offline_and_streams_features(dinov2_weights, small_dinov2, monkeypatch):
    no_network(monkeypatch)
    net, reason = metrics.load_dinov2(dinov2_weights)
    assert reason is None and net.backbone.startswith("dinov2vits14-w") and not net.training
    assert type(net).__module__ == "torch_fidelity.feature_extractor_dinov2"  # torch-fidelity's own extractor
    gray = _images(3)
    feats = metrics.dinov2_features(iter([gray, gray[:1].expand(-1, 3, -1, -1)]), net, "cpu", batch_size=2)
    assert feats.shape == (4, 384) and feats.dtype == torch.float32 and torch.isfinite(feats).all()
    torch.testing.assert_close(feats[0], feats[3])  # grayscale is the 3-channel repeat
    assert not torch.allclose(feats[0], feats[1])
    with pytest.raises(ValueError, match="uint8"):
        metrics.dinov2_features([gray.float()], net)
    # Another architecture's file is never loaded into this one, nor the other way round.
    monkeypatch.setattr(dinov2, "MODEL", "dinov2-vit-b-14")
    net, reason = metrics.load_dinov2(dinov2_weights)
    assert net is None and "could not be loaded" in reason and "\n" not in reason


def test_the_official_layout_round_trips_through_timms_dinov2_filter():
    """The official keys are timm's but for mask_token (dropped by timm's DINOv2 conversion); at the
    files' own 518 px every tensor arrives unchanged, and at torch-fidelity's 224 px only the
    position embedding changes, to 16 x 16 + 1."""
    official = official_dinov2_state_dict(SMALL)
    with torch.device("meta"):  # the timm models' own random initialisation is not needed
        native, net = dinov2.build(SMALL, 518), dinov2.build(SMALL)
    assert set(native.state_dict()) == set(official) - {"mask_token"}
    converted = dinov2.timm_state_dict(official, native)
    assert converted.keys() == native.state_dict().keys()
    assert all(torch.equal(converted[k], official[k]) for k in converted)
    native.load_state_dict(converted, assign=True)  # strict
    assert all(torch.equal(v, official[k]) for k, v in native.state_dict().items())  # and back
    converted = dinov2.timm_state_dict(official, net)
    assert converted["pos_embed"].shape == net.pos_embed.shape == (1, 16 * 16 + 1, 384)
    assert torch.equal(converted["pos_embed"][:, 0], official["pos_embed"][:, 0])  # the class token's
    assert all(torch.equal(converted[k], official[k]) for k in converted if k != "pos_embed")
    net.load_state_dict(converted, assign=True)


@pytest.mark.parametrize("model", sorted(ARCHS))
def test_timms_dinov2_is_the_architecture_torch_fidelity_gets(model):
    """ViT-S/14 and ViT-L/14 (on the meta device: shapes only) as load_dinov2 builds them: the
    official file loads strictly, the heads and widths are DINOv2's, and forward is the class token
    after the final norm, 384 and 1024 features."""
    import timm

    d, depth, heads = ARCHS[model]
    assert dinov2.TIMM[model] in timm.list_models(f"*{dinov2.TIMM[model]}*")
    with torch.device("meta"):
        net = dinov2.build(model)  # torch-fidelity's input size, 224
    net.load_state_dict(dinov2.timm_state_dict(official_dinov2_state_dict(model, device="meta"), net), assign=True)
    assert net.patch_embed.grid_size == (16, 16) and net.pos_embed.shape == (1, 257, d)
    assert len(net.blocks) == depth and all(b.attn.num_heads == heads for b in net.blocks)
    assert net.num_features == net.embed_dim == d and net.global_pool == "token" and net.num_prefix_tokens == 1
    assert isinstance(net.head, torch.nn.Identity) and isinstance(net.fc_norm, torch.nn.Identity)
    assert isinstance(net.norm, torch.nn.LayerNorm) and net.norm.eps == 1e-6
    assert net(torch.empty(2, 3, 224, 224, device="meta")).shape == (2, d)


def test_the_hub_position_embedding_is_upstreams_resampling():
    pos = torch.randn(1, 1 + 37 * 37, 8, generator=torch.Generator().manual_seed(0))
    assert dinov2.hub_position_embedding(pos, 37) is pos  # upstream returns it unchanged at 518 px
    out = dinov2.hub_position_embedding(pos, 16)
    assert out.shape == (1, 257, 8) and torch.equal(out[:, 0], pos[:, 0])
    grid = pos[:, 1:].reshape(1, 37, 37, 8).permute(0, 3, 1, 2)
    by_size = torch.nn.functional.interpolate(grid, size=(16, 16), mode="bicubic", antialias=True)
    assert not torch.allclose(out[:, 1:], by_size.permute(0, 2, 3, 1).reshape(1, 256, 8))  # not timm's default
    with pytest.raises(ValueError, match="square"):
        dinov2.hub_position_embedding(pos[:, :-1], 16)


def test_timms_dinov2_computes_what_upstreams_hub_model_does(tmp_path, monkeypatch):
    """load_dinov2's extractor (timm's ViT-S/14 and the weights file) against torch-fidelity's with
    facebookresearch/dinov2's own hub model in it, at torch-fidelity's 224 px, where the torch hub
    cache holds upstream's code (torch-fidelity's first run online puts it there); skipped elsewhere.
    Upstream's random initialisation (not smooth position embeddings) makes any other resampling of
    the position embedding show. Also: official_dinov2_state_dict's names and shapes are upstream's."""
    from unittest import mock

    from torch_fidelity.feature_extractor_dinov2 import FeatureExtractorDinoV2

    repo = Path(torch.hub.get_dir()) / "facebookresearch_dinov2_main"
    if not (repo / "hubconf.py").is_file():
        pytest.skip(f"no copy of facebookresearch/dinov2 in {repo.parent}")
    torch.manual_seed(0)
    upstream = torch.hub.load(str(repo), "dinov2_vits14", source="local", pretrained=False).eval()
    official = upstream.state_dict()
    layout = official_dinov2_state_dict(SMALL, device="meta")
    assert {k: v.shape for k, v in official.items()} == {k: v.shape for k, v in layout.items()}
    path = tmp_path / dinov2.weights_file(SMALL)
    torch.save(official, path)
    monkeypatch.setattr(dinov2, "MODEL", SMALL)
    ours, reason = metrics.load_dinov2(path)
    assert reason is None and type(ours.model).__module__ == "timm.models.vision_transformer"
    with mock.patch.object(torch.hub, "load", lambda *a, **k: upstream):
        hubs = FeatureExtractorDinoV2(SMALL, ["dinov2"])
    images = _images(3, channels=3, size=40)
    with torch.no_grad():
        (got,), (want,) = ours(images), hubs(images)
    assert got.shape == (3, 384)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)  # 0 here


@pytest.mark.parametrize("backend", ["lpips", "dinov2"])
def test_weights_resolution_order_and_missing_weights(backend, lpips_weights, dinov2_weights, tmp_path, monkeypatch):
    no_network(monkeypatch, socket_error=OSError)
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    if backend == "lpips":
        mod, resolve, load, given = lpips, lpips.resolve_lpips_weights, metrics.load_lpips, lpips_weights
        names = list(lpips.FILES)
        found = lambda folder, file=None: {n: Path(folder) / n for n in names}  # noqa: E731
    else:
        monkeypatch.setattr(dinov2, "MODEL", SMALL)
        mod, resolve, load, given = dinov2, dinov2.resolve_dinov2_weights, metrics.load_dinov2, dinov2_weights
        names = [dinov2.weights_file()]
        found = lambda folder, file=None: Path(file or Path(folder) / names[0])  # noqa: E731
    monkeypatch.delenv(mod.ENV_WEIGHTS, raising=False)
    # Nothing anywhere and offline: None and a reason naming every way to give the weights.
    net, reason = load(None)
    assert net is None and "offline" in reason and mod.FLAG in reason and mod.ENV_WEIGHTS in reason
    assert all(n in reason for n in names)
    assert resolve(None, download=False)[0] is None and mod.problem(None) is None
    # Online but a download fails: the same, with the error.
    monkeypatch.setattr(metrics.inception, "online", lambda: True)
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: 1 / 0)
    path, reason = resolve(None)
    assert path is None and "division by zero" in reason
    # A download lands in the hub cache, under the names torch-fidelity's loaders use.
    fetched = []

    def download(url, dst, progress=True):
        fetched.append(url)
        Path(dst).write_bytes(b"x")

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    assert resolve(None) == (found(hub / "checkpoints"), None) and len(fetched) == len(names)
    assert resolve(None) == (found(hub / "checkpoints"), None) and len(fetched) == len(names)  # cached: no download
    # The environment variable beats the hub cache; an explicit path beats both.
    monkeypatch.setenv(mod.ENV_WEIGHTS, str(given))
    assert resolve(None) == (found(given, given), None) and mod.problem(None) is None
    other = tmp_path / "other"
    other.mkdir()
    for n in names:
        (other / n).write_bytes(b"corrupt")
    explicit = other if backend == "lpips" else other / names[0]
    assert resolve(explicit) == (found(other, explicit), None)
    # A corrupt file: None and the reason, not a crash.
    net, reason = load(explicit)
    assert net is None and "could not be loaded" in reason
    # A named path that is missing, or a folder short of a file, is reported, never replaced.
    (other / names[0]).unlink()
    for bad in (tmp_path / "nope", other / names[0]):
        path, reason = resolve(bad)
        assert path is None and str(bad) in reason and mod.FLAG in reason and reason == mod.problem(bad)
    if backend == "lpips":
        assert "lacks " + names[0] in mod.problem(other)


def test_dinov2_samples_is_a_count_that_old_folders_read_as_off():
    assert load_config("digits").eval.dinov2_samples == 0 and BACKFILL[("eval", "dinov2_samples")] == 0
    assert backfilled({"eval": {"inception_samples": 1000}})["eval"]["dinov2_samples"] == 0
    assert load_config("digits", overrides=["eval.dinov2_samples=8"]).eval.dinov2_samples == 8
    for bad, said in (("-1", "zero or positive"), ("1", "too few"), ("2000000", "too large"), ("x", "integer")):
        with pytest.raises(ConfigError, match=said):
            load_config("digits", overrides=[f"eval.dinov2_samples={bad}"])


def _fewer_test_images(monkeypatch, n):
    """Runs see the first n test images of each dataset (the training split, and with it the cached
    domain classifier, unchanged)."""
    import dataclasses

    import benchmarks.data as data_module
    from benchmarks.data.registry import Split

    real = data_module.load_dataset

    def fewer(*args, **kwargs):
        data = real(*args, **kwargs)
        return dataclasses.replace(data, test=Split(data.test.x[:n].contiguous(), data.test.y[:n].contiguous()))

    monkeypatch.setattr(data_module, "load_dataset", fewer)


@pytest.mark.slow
def test_the_columns_fill_in_with_weights(cli, lpips_weights, dinov2_weights, small_dinov2, monkeypatch):
    """A digits run with both weights given: recon_lpips_vgg16 and the DINOv2 columns, their
    protocol notes and references. LPIPS at the digits' own 16 px here (64 in the harness), to keep
    the 450 test pairs and their chance and floor references quick on a CPU."""
    monkeypatch.setattr(lpips, "RESIZE", 16)
    _fewer_test_images(monkeypatch, 60)  # LPIPS's VGG16 costs about 0.05 s per pair on one core
    code, _, err = cli("run", "digits", "--budget", "smoke", "--models", "pca", "--out", "r", "--no-figures",
                       "--lpips-weights", lpips_weights, "--dinov2-weights", dinov2_weights,
                       "--set", "eval.dinov2_samples=8", "--set", "train.steps=5")
    assert code == 0, err
    assert "LPIPS" not in err and "DINOv2" not in err
    m = json.loads(Path("r/pca/seed0/metrics.json").read_text())
    assert math.isfinite(m["recon_lpips_vgg16"]) and m["recon_lpips_vgg16"] >= 0
    assert math.isfinite(m["fd_dinov2_8"]) and m["fd_dinov2_8"] >= 0 and m["density_dinov2_8"] >= 0
    for col in ("precision_dinov2_8", "recall_dinov2_8", "coverage_dinov2_8"):
        assert 0 <= m[col] <= 1, col
    proto = m["protocol"]
    assert "sha256" in proto["recon_lpips_vgg16"] and "60 test images" in proto["recon_lpips_vgg16"]
    assert "DINOv2 ViT-L/14" in proto["fd_dinov2_8"] and "8 generated vs 8 real" in proto["precision_dinov2_8"]
    assert "recon_lpips_vgg16" in m["metric_seconds"]
    refs = json.loads(Path("r/references.json").read_text())
    values = refs["values"]
    assert {"chance_recon_lpips_vgg16", "mean_image_recon_lpips_vgg16", "real_precision_dinov2_8"} <= set(values)
    assert values["chance_recon_lpips_vgg16"][0] > 0 and "recon_lpips_vgg16" in refs["notes"]["chance"]
    table = Path("r/table.md").read_text()
    assert "recon_lpips_vgg16 ↓" in table and "fd_dinov2_8 ↓" in table and "precision_dinov2_8 ↑" in table


def test_without_weights_the_columns_are_empty_with_a_reason(cli, tmp_path, monkeypatch):
    """No flag, no variable, an empty torch hub cache and no network, on a device where both would
    run (the CPU's own skip is pretended away): no column, and the reason in the protocol and on
    stderr. On a CPU without named weights the reason is the CPU's cost."""
    from benchmarks.evaluation.backbones import Backbones

    no_network(monkeypatch, socket_error=OSError)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    for var in (lpips.ENV_WEIGHTS, dinov2.ENV_WEIGHTS):
        monkeypatch.delenv(var, raising=False)
    on_cpu = SimpleNamespace(runtime=SimpleNamespace(device=torch.device("cpu")))
    reason = Backbones.cpu_skip(on_cpu, None, "--x PATH", "X", "a lot")
    assert "skipped on a CPU, where it costs a lot; pass --x PATH (or set $X)" in reason
    assert Backbones.cpu_skip(on_cpu, "named.pth", "--x PATH", "X", "a lot") is None
    monkeypatch.setattr(Backbones, "cpu_skip", lambda *a, **k: None)
    code, _, err = cli("run", "digits", "--budget", "smoke", "--models", "pca", "--out", "r", "--no-figures",
                       "--set", "eval.dinov2_samples=8", "--set", "train.steps=5")
    assert code == 0, err
    assert "LPIPS (recon_lpips_vgg16) left empty: no LPIPS weights and offline" in err
    assert "DINOv2 metrics (fd_, precision_, recall_, density_, coverage_dinov2_8) left empty" in err
    m = json.loads(Path("r/pca/seed0/metrics.json").read_text())
    assert not any("lpips" in k or "dinov2" in k for k in m)
    for key in ("recon_lpips_vgg16", "fd_dinov2_8"):
        assert m["protocol"][key].startswith("empty: no ") and "offline" in m["protocol"][key]
    assert "--lpips-weights DIR" in m["protocol"]["recon_lpips_vgg16"]
    assert "--dinov2-weights PATH" in m["protocol"]["fd_dinov2_8"]
    assert "`recon_lpips_vgg16`: empty: no LPIPS weights" in Path("r/table.md").read_text()


def test_a_named_weights_path_that_is_wrong_is_refused_before_training(cli, lpips_weights, tmp_path, monkeypatch):
    for flag, given, said in (("--lpips-weights", tmp_path / "nope", "is not a folder"),
                              ("--lpips-weights", lpips_weights / lpips.LPIPS_FILE, "is not a folder"),
                              ("--dinov2-weights", tmp_path / "nope.pth", "is not a file")):
        code, _, err = cli("run", "digits", "--budget", "smoke", "--models", "pca", "--out", "r", flag, given)
        assert code == 2 and f"{flag}={given} {said}" in err and err.startswith("error: "), err
    half = tmp_path / "half"
    half.mkdir()
    (half / lpips.LPIPS_FILE).write_bytes(b"x")
    code, _, err = cli("run", "digits", "--budget", "smoke", "--models", "pca", "--out", "r", "--lpips-weights", half)
    assert code == 2 and f"lacks {lpips.VGG16_FILE}" in err
    monkeypatch.setenv(dinov2.ENV_WEIGHTS, str(tmp_path / "gone.pth"))
    code, _, err = cli("run", "digits", "--budget", "smoke", "--models", "pca", "--out", "r")
    assert code == 2 and f"${dinov2.ENV_WEIGHTS}=" in err
    assert not Path("r").exists()  # refused before anything was written
