"""LPIPS (Zhang et al. 2018), the perceptual distance of a reconstruction to its input, with
torch-fidelity's implementation (`lpips-vgg16`, SampleSimilarityLPIPS): ImageNet VGG16 features at
five depths, unit-normalised per position, squared differences weighted by the LPIPS v0.1 linear
layers, averaged over positions and summed. 0 for identical images; lower is closer.

Its two weight files are the ones torch-fidelity's constructor fetches itself:
`weights-vgg16-lpips.pth` (the linear layers, torch-fidelity's re-upload of LPIPS's v0.1 vgg.pth)
and `vgg16-397923af.pth` (torchvision's VGG16 IMAGENET1K_V1; only its `features.*` are used).
They are looked for as weights.resolve_weights says: `--lpips-weights DIR` (a folder holding both
under these names), $BIGAN_BENCH_LPIPS_WEIGHTS, the torch hub cache, a download. Without them
`load_lpips` returns (None, reason) and the column stays empty; no other network is substituted.

Inputs: uint8 (N, 1|3, H, W) as for Inception (quantised by to_uint8), grey repeated to 3
channels, resized to RESIZE = 64 px by torch-fidelity's own resize (bilinear up, area down), as
its PPL does: LPIPS was trained on 64 x 64 patches, and VGG16's four poolings would leave a 16 px
digit a single position at the deepest layer it reads.
"""
import os
from types import SimpleNamespace
from unittest import mock

import torch

from .inception import file_sha256
from .weights import explicit_problem, resolve_weights

BACKBONE = "lpips-vgg16"
LPIPS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-vgg16-lpips.pth"
VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"
LPIPS_FILE, VGG16_FILE = "weights-vgg16-lpips.pth", "vgg16-397923af.pth"
FILES = {LPIPS_FILE: LPIPS_URL, VGG16_FILE: VGG16_URL}
ENV_WEIGHTS = "BIGAN_BENCH_LPIPS_WEIGHTS"
FLAG = "--lpips-weights"
RESIZE = 64
CHANNELS = (64, 128, 256, 512, 512)  # VGG16's channels at relu1_2 ... relu5_3: the linear layers' inputs


def problem(path):
    """Why an explicitly named weights folder (`path`, else $BIGAN_BENCH_LPIPS_WEIGHTS) cannot be
    used, or None: for the command line to refuse it before anything trains."""
    for given, origin in ((path, FLAG), (os.environ.get(ENV_WEIGHTS), f"${ENV_WEIGHTS}")):
        if given:
            return explicit_problem(given, list(FILES), "LPIPS", origin)
    return None


def resolve_lpips_weights(path=None, download=True, progress=False):
    """({LPIPS_FILE: Path, VGG16_FILE: Path}, None) or (None, one-line reason)."""
    return resolve_weights(FILES, what="LPIPS", flag=FLAG, env=ENV_WEIGHTS, path=path, download=download,
                           progress=progress)


def _vgg16_layers():
    """torchvision.models.vgg16().features, without building (and initialising) its classifier."""
    from torchvision.models.vgg import cfgs, make_layers

    return make_layers(cfgs["D"], batch_norm=False)


def _vgg16_features(path):
    """VGG16's convolutional part with the `features.*` tensors of the torchvision state dict at
    `path` (strict: every one of them, of the right shape); its classifier, unused by LPIPS, may be
    in the file or not."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    if not features:
        raise ValueError("no features.* tensors: not a torchvision VGG16 state dict")
    with torch.device("meta"):  # no random initialisation to overwrite
        net = _vgg16_layers()
    net.load_state_dict(features, assign=True)
    return net


def load_lpips(weights=None, device="cpu", download=True):
    """(module, None) or (None, reason). The module is torch-fidelity's SampleSimilarityLPIPS
    (resize RESIZE, uint8 inputs), in eval mode on `device`, with .weights_sha256 ({file: sha256})
    and .backbone (a cache-key name) attached. Its constructor takes no paths and fetches both files
    itself; it is called with its two loaders answering from the resolved files, so the module, its
    VGG16 slicing and its strict load of the linear layers are torch-fidelity's own."""
    paths, reason = resolve_lpips_weights(weights, download=download)
    if paths is None:
        return None, reason
    import torch_fidelity.sample_similarity_lpips as fl

    def linear_layers(url, **kwargs):
        if url != fl.URL_VGG16_LPIPS:
            raise ValueError(f"torch-fidelity asked for {url}, not the LPIPS weights {LPIPS_URL}")
        return torch.load(paths[LPIPS_FILE], map_location="cpu", weights_only=True)

    try:
        vgg = _vgg16_features(paths[VGG16_FILE])
        with mock.patch.object(fl, "load_state_dict_from_url", linear_layers), \
                mock.patch.object(fl, "torchvision_load_pretrained_vgg16", lambda **kw: SimpleNamespace(features=vgg)):
            net = fl.SampleSimilarityLPIPS(BACKBONE, sample_similarity_resize=RESIZE, sample_similarity_dtype="uint8")
    except Exception as e:  # noqa: BLE001 - a corrupt or foreign file: report it, do not crash
        return None, (f"LPIPS weights {paths[LPIPS_FILE].parent} could not be loaded: {type(e).__name__}: "
                      f"{' '.join(str(e).split())[:200]}")
    net.weights_sha256 = {name: file_sha256(p) for name, p in paths.items()}
    net.backbone = f"lpips-vgg16-w{net.weights_sha256[LPIPS_FILE][:8]}-{net.weights_sha256[VGG16_FILE][:8]}"
    return net.to(device), None


@torch.no_grad()
def lpips_distance(a, b, net, device=None, *, batch_size=64):
    """LPIPS between a[i] and b[i] for every i: (N,) float64 on the CPU. `a`, `b`: uint8 (N, 1|3,
    H, W) of the same shape (quantise with to_uint8); grey is repeated to 3 channels."""
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    for t in (a, b):
        if t.dtype != torch.uint8 or t.dim() != 4 or t.shape[1] not in (1, 3):
            raise ValueError(f"expected uint8 (N, 1|3, H, W) images (quantise with to_uint8), "
                             f"got {t.dtype} {tuple(t.shape)}")
    if a.shape != b.shape or not len(a):
        raise ValueError(f"need two equal non-empty image batches, got {tuple(a.shape)} and {tuple(b.shape)}")
    device = torch.device(device) if device is not None else next(net.parameters()).device
    out = []
    for i in range(0, len(a), batch_size):
        x, y = (t[i:i + batch_size].to(device).expand(-1, 3, -1, -1) for t in (a, b))
        out.append(net(x, y).double().reshape(-1).cpu())
    return torch.cat(out)
