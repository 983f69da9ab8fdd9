"""DINOv2 features for FD, precision/recall and density/coverage: the feature space Stein et al.
(2023, "Exposing flaws of generative model evaluation metrics") found to agree with human judgement
where InceptionV3's does not. torch-fidelity's `dinov2-vit-l-14` extractor (FeatureExtractorDinoV2):
uint8 images resized to 224 px with its TF-1 compatible bilinear resize, ImageNet-normalised, and
the final-norm class token of DINOv2 ViT-L/14 (1024 features), Stein et al.'s backbone.

torch-fidelity gets the network from torch hub (facebookresearch/dinov2's code and weights) and
takes no weights path. Here the network is timm's implementation of DINOv2's ViT
(`vit_large_patch14_dinov2`, built for torch-fidelity's input size with no classifier, so it
returns the final-norm class token), loaded strictly with the official weights file and handed to
torch-fidelity's constructor in place of its hub call; its preprocessing and forward are
torch-fidelity's own. The file's keys are converted by timm's DINOv2 checkpoint filter
(`checkpoint_filter_fn`); its 37 x 37 position embedding is first resampled to the input's patch
grid the way upstream's forward does it at every call (bicubic, no antialias, scale factor
(grid + 0.1) / 37), which timm's own resampling (antialiased, by size) does not reproduce. The
weights file (`dinov2_vitl14_pretrain.pth`, the name the hub caches it under) is looked for as
weights.resolve_weights says: `--dinov2-weights PATH`, $BIGAN_BENCH_DINOV2_WEIGHTS, the torch hub
cache, a download. Without it `load_dinov2` returns (None, reason) and the columns stay empty.
"""
import os
from unittest import mock

import torch
from torch.nn import functional as F

from .inception import stamped
from .weights import explicit_problem, resolve_weights

MODEL = "dinov2-vit-l-14"  # torch-fidelity's name; the columns fd_dinov2_<n> etc. mean this network
ENV_WEIGHTS = "BIGAN_BENCH_DINOV2_WEIGHTS"
FLAG = "--dinov2-weights"
BASE_URL = "https://dl.fbaipublicfiles.com/dinov2"
# torch-fidelity's model -> timm's architecture (timm/models/vision_transformer.py)
TIMM = {"dinov2-vit-s-14": "vit_small_patch14_dinov2", "dinov2-vit-b-14": "vit_base_patch14_dinov2",
        "dinov2-vit-l-14": "vit_large_patch14_dinov2"}
HUB_INTERPOLATE_OFFSET = 0.1  # facebookresearch/dinov2's hub models: interpolate_offset=0.1, antialias False


def hub_name(model=None):
    """"dinov2-vit-l-14" -> "dinov2_vitl14", the hub entry point and the weights' file stem."""
    from_fidelity = {"dinov2-vit-s-14": "dinov2_vits14", "dinov2-vit-b-14": "dinov2_vitb14",
                     "dinov2-vit-l-14": "dinov2_vitl14"}
    return from_fidelity[model or MODEL]


def weights_file(model=None):
    return f"{hub_name(model)}_pretrain.pth"


def _files(model=None):
    name = hub_name(model)
    return {weights_file(model): f"{BASE_URL}/{name}/{name}_pretrain.pth"}


def build(model=None, size=None):
    """timm's DINOv2 ViT for `model` (default MODEL), randomly initialised (build it under
    `torch.device("meta")` to skip that): for `size` px inputs (default torch-fidelity's
    INPUT_IMAGE_SIZE, 224), patch 14, no classifier, global_pool "token": forward(x) is the
    final-norm class token, (N, embed_dim), what torch-fidelity takes from the hub model."""
    import timm

    if size is None:
        from torch_fidelity.feature_extractor_dinov2 import FeatureExtractorDinoV2
        size = FeatureExtractorDinoV2.INPUT_IMAGE_SIZE
    return timm.create_model(TIMM[model or MODEL], pretrained=False, img_size=size, num_classes=0,
                             global_pool="token")


def hub_position_embedding(pos_embed, grid):
    """A DINOv2 position embedding (1, 1 + M*M, d) on a `grid` x `grid` patch grid, as upstream's
    DinoVisionTransformer.interpolate_pos_encoding computes it for a grid x grid input: unchanged
    when the grids agree, else the patch part resized bicubically without antialias by the scale
    factor (grid + 0.1) / M (the hub models' interpolate_offset), the class token's kept."""
    n = pos_embed.shape[1] - 1
    m = round(n ** 0.5)
    if m * m != n:
        raise ValueError(f"a position embedding of {n} patches is not a square grid")
    if m == grid:
        return pos_embed
    cls, patches = pos_embed.float()[:, :1], pos_embed.float()[:, 1:]
    scale = (grid + HUB_INTERPOLATE_OFFSET) / m
    patches = F.interpolate(patches.reshape(1, m, m, -1).permute(0, 3, 1, 2), scale_factor=(scale, scale),
                            mode="bicubic", antialias=False)
    if patches.shape[-2:] != (grid, grid):
        raise ValueError(f"resampling {m} x {m} position embeddings gave {tuple(patches.shape[-2:])}, "
                         f"not {grid} x {grid}")
    return torch.cat((cls, patches.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)), dim=1).to(pos_embed.dtype)


def timm_state_dict(official, net):
    """An official DINOv2 state dict (facebookresearch/dinov2's keys: cls_token, pos_embed,
    mask_token, patch_embed.proj.*, blocks.N.{norm1,attn.qkv,attn.proj,ls1.gamma,...}, norm.*) as
    timm's `net` (from build) loads it strictly: the position embedding resampled to the net's
    patch grid as the hub model does at run time, then timm's checkpoint_filter_fn (its DINOv2
    conversion drops mask_token; timm's other names are upstream's)."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    official = dict(official)
    if "pos_embed" in official:
        official["pos_embed"] = hub_position_embedding(official["pos_embed"], net.patch_embed.grid_size[0])
    return checkpoint_filter_fn(official, net)


def problem(path):
    """Why an explicitly named weights file (`path`, else $BIGAN_BENCH_DINOV2_WEIGHTS) cannot be
    used, or None: for the command line to refuse it before anything trains."""
    for given, origin in ((path, FLAG), (os.environ.get(ENV_WEIGHTS), f"${ENV_WEIGHTS}")):
        if given:
            return explicit_problem(given, [weights_file()], "DINOv2", origin)
    return None


def resolve_dinov2_weights(path=None, download=True, progress=False):
    """(Path, None) or (None, one-line reason)."""
    found, reason = resolve_weights(_files(), what="DINOv2", flag=FLAG, env=ENV_WEIGHTS, path=path,
                                    download=download, progress=progress)
    return (None, reason) if found is None else (next(iter(found.values())), None)


def load_dinov2(weights=None, device="cpu", download=True):
    """(extractor, None) or (None, reason). The extractor is torch-fidelity's
    FeatureExtractorDinoV2 for MODEL returning (features,), in eval mode on `device`, with
    .weights_path, .weights_sha256 and .backbone (a cache-key name) attached."""
    path, reason = resolve_dinov2_weights(weights, download=download)
    if path is None:
        return None, reason
    from torch_fidelity.feature_extractor_dinov2 import FeatureExtractorDinoV2

    name = hub_name()

    def from_hub(repo, model, *args, **kwargs):  # what torch-fidelity's constructor asks torch hub for
        if (repo, model) != ("facebookresearch/dinov2", name):
            raise ValueError(f"torch-fidelity asked torch hub for {repo} {model}, not facebookresearch/dinov2 {name}")
        with torch.device("meta"):  # no random initialisation to overwrite (seconds for ViT-L)
            net = build(size=FeatureExtractorDinoV2.INPUT_IMAGE_SIZE)
        official = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(timm_state_dict(official, net), assign=True)  # strict
        return net

    try:
        with mock.patch.object(torch.hub, "load", from_hub):
            net = FeatureExtractorDinoV2(MODEL, ["dinov2"])
    except Exception as e:  # noqa: BLE001 - a corrupt or foreign file: report it, do not crash
        return None, f"DINOv2 weights {path} could not be loaded: {type(e).__name__}: {' '.join(str(e).split())[:200]}"
    return stamped(net, path, name.replace("_", ""), device), None


@torch.no_grad()
def dinov2_features(batches, extractor, device=None, *, batch_size=64):
    """Stream uint8 image batches (N, 1|3, H, W) through the extractor: (N, d) float32 on the CPU.
    Grey is repeated to 3 channels; each batch is cut into pieces of `batch_size` (224 px)."""
    device = torch.device(device) if device is not None else next(extractor.parameters()).device
    feats = []
    for batch in batches:
        batch = torch.as_tensor(batch)
        if batch.dtype != torch.uint8 or batch.dim() != 4 or batch.shape[1] not in (1, 3):
            raise ValueError(f"expected uint8 (N, 1|3, H, W) images (quantise with to_uint8), "
                             f"got {batch.dtype} {tuple(batch.shape)}")
        for i in range(0, len(batch), batch_size):
            (f,) = extractor(batch[i:i + batch_size].to(device).expand(-1, 3, -1, -1))
            feats.append(f.float().cpu())
    if not feats:
        raise ValueError("no images")
    return torch.cat(feats)
