"""DINOv2 features for FD, precision/recall and density/coverage: the feature space Stein et al.
(2023, "Exposing flaws of generative model evaluation metrics") found to agree with human judgement
where InceptionV3's does not. torch-fidelity's `dinov2-vit-l-14` extractor (FeatureExtractorDinoV2):
uint8 images resized to 224 px with its TF-1 compatible bilinear resize, ImageNet-normalised, and
the final-norm class token of DINOv2 ViT-L/14 (1024 features), Stein et al.'s backbone.

torch-fidelity gets the network from torch hub (facebookresearch/dinov2's code and weights) and
takes no weights path. Here the network is dinov2_vit.py's copy of upstream's code, built as the
hub builds it, with the released weights file loaded strictly, and handed to torch-fidelity's
constructor in place of its hub call; its preprocessing and forward are torch-fidelity's own. The
weights file (`dinov2_vitl14_pretrain.pth`, the name the hub caches it under) is looked for as
weights.resolve_weights says: `--dinov2-weights PATH`, $BIGAN_BENCH_DINOV2_WEIGHTS, the torch hub
cache, a download. Without it `load_dinov2` returns (None, reason) and the columns stay empty.
"""
import os
from unittest import mock

import torch

from . import dinov2_vit
from .inception import file_sha256
from .weights import explicit_problem, resolve_weights

MODEL = "dinov2-vit-l-14"  # torch-fidelity's name; the columns fd_dinov2_<n> etc. mean this network
ENV_WEIGHTS = "BIGAN_BENCH_DINOV2_WEIGHTS"
FLAG = "--dinov2-weights"
BASE_URL = "https://dl.fbaipublicfiles.com/dinov2"


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
            net = dinov2_vit.build(name)
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), assign=True)  # strict
        return net

    try:
        with mock.patch.object(torch.hub, "load", from_hub):
            net = FeatureExtractorDinoV2(MODEL, ["dinov2"])
    except Exception as e:  # noqa: BLE001 - a corrupt or foreign file: report it, do not crash
        return None, f"DINOv2 weights {path} could not be loaded: {type(e).__name__}: {' '.join(str(e).split())[:200]}"
    net.weights_path = str(path)
    net.weights_sha256 = file_sha256(path)
    net.backbone = f"{name.replace('_', '')}-w{net.weights_sha256[:10]}"
    return net.to(device), None


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
