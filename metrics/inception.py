"""The standard FID/IS/KID backbone: torch-fidelity's TF-ported InceptionV3 ("inception-v3-compat").

It takes uint8 (N, 3, H, W) and resizes to 299 with the TF-1 compatible bilinear resize, so the
numbers match TTUR / torch-fidelity (torchmetrics >= 1.8 defaults to an antialiased resize that
does not). Real and generated images are quantised by the one function `to_uint8`.

Weights are never replaced by another backbone: if the TF-ported file cannot be found (or
downloaded when online), `load_inception` returns (None, reason) and the caller leaves the
IS/FID/KID columns empty.
"""
import hashlib
import os
import socket
from pathlib import Path

import torch

from .cache import read_entry, save_entry
from .frechet import feature_stats

BACKBONE = "inception-v3-compat"
WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
ENV_WEIGHTS = "BIGAN_BENCH_FID_WEIGHTS"
FEATURES = ["2048", "logits_unbiased"]  # pool features (FID, KID) and IS logits, one pass


def to_uint8(x):
    """[-1, 1] floats -> uint8 pixels: round((x + 1) * 127.5), clamped. Use it for real and
    generated images alike (real ones went u -> u / 127.5 - 1, so this gives u back exactly)."""
    return ((x.detach().float() + 1) * 127.5).round().clamp_(0, 255).to(torch.uint8)


def _hub_weights_path():
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def online(host="github.com", timeout=3.0):
    """A quick reachability check, so an offline machine fails in milliseconds instead of hanging
    in urlopen. Behind an HTTPS proxy the direct check means nothing: assume online."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy")):
        return True
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def resolve_inception_weights(path=None, download=True, progress=False):
    """(Path, None) or (None, one-line reason). Order: `path`, $BIGAN_BENCH_FID_WEIGHTS, the torch
    hub cache (torch.hub.get_dir()/checkpoints/<WEIGHTS_FILE>), then a download through torch's
    hub loader (torch-fidelity's URL) when `download` and online. A path that was named
    explicitly (argument or variable) but is missing is an error, not a cue to look elsewhere."""
    for given, origin in ((path, "--fid-weights"), (os.environ.get(ENV_WEIGHTS), f"${ENV_WEIGHTS}")):
        if given:
            p = Path(given).expanduser()
            return (p, None) if p.is_file() else (None, f"Inception weights {origin}={given} is not a file")
    hub = _hub_weights_path()
    if hub.is_file():
        return hub, None
    if not download:
        return None, (f"no Inception weights: pass --fid-weights PATH, set ${ENV_WEIGHTS}, "
                      f"or put {WEIGHTS_FILE} in {hub.parent}")
    if not online():
        return None, (f"no Inception weights and offline: pass --fid-weights PATH, set ${ENV_WEIGHTS}, "
                      f"or copy {WEIGHTS_FILE} to {hub.parent}")
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60)  # urlopen has no timeout of its own
    try:
        torch.hub.load_state_dict_from_url(URL_INCEPTION_V3, progress=progress, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - any failure means "no weights", with the reason
        return None, f"downloading the Inception weights from {URL_INCEPTION_V3} failed: {e}"
    finally:
        socket.setdefaulttimeout(old)
    return (hub, None) if hub.is_file() else (None, f"download finished but {hub} is missing")


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stamped(net, path, name, device):
    """`net` on `device`, with where its weights came from: .weights_path, .weights_sha256 and
    .backbone, the name feature caches are keyed by (`name`-w and the file hash's first 10 hex
    digits, so that features from another weights file are never reused)."""
    net.weights_path = str(path)
    net.weights_sha256 = file_sha256(path)
    net.backbone = f"{name}-w{net.weights_sha256[:10]}"
    return net.to(device)


def load_inception(weights=None, device="cpu", download=True):
    """(extractor, None) or (None, reason). The extractor is torch-fidelity's
    FeatureExtractorInceptionV3 returning (2048 pool features, logits_unbiased), in eval mode on
    `device`, with .weights_path, .weights_sha256 and .backbone (a cache-key name) attached."""
    path, reason = resolve_inception_weights(weights, download=download)
    if path is None:
        return None, reason
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    try:
        net = FeatureExtractorInceptionV3(BACKBONE, FEATURES, feature_extractor_weights_path=str(path))
    except Exception as e:  # noqa: BLE001 - a corrupt or foreign file: report it, do not crash
        return None, f"Inception weights {path} could not be loaded: {type(e).__name__}: {str(e)[:200]}"
    return stamped(net, path, "incv3compat", device), None


@torch.no_grad()
def inception_features(batches, extractor, device=None, *, batch_size=64, with_logits=True,
                       dtype=torch.float64):
    """Stream uint8 image batches (N, 1|3, H, W) through the extractor. Returns (feats, logits):
    (N, 2048) pool features in `dtype` (the network computes float32, so float32 is lossless and
    halves memory) and (N, 1008) logits_unbiased in float64 for IS (None unless `with_logits`).
    Grayscale is repeated to 3 channels. Each incoming batch is cut into pieces of `batch_size`
    (Inception at 299 px is memory-hungry); results are gathered on the CPU."""
    device = torch.device(device) if device is not None else next(extractor.parameters()).device
    feats, logits = [], []
    for batch in batches:
        batch = torch.as_tensor(batch)
        if batch.dtype != torch.uint8 or batch.dim() != 4 or batch.shape[1] not in (1, 3):
            raise ValueError(f"expected uint8 (N, 1|3, H, W) images (quantise with to_uint8), "
                             f"got {batch.dtype} {tuple(batch.shape)}")
        for i in range(0, len(batch), batch_size):
            x = batch[i:i + batch_size].to(device)
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            f, lg = extractor(x)
            feats.append(f.to(dtype).cpu())
            if with_logits:
                logits.append(lg.double().cpu())
    if not feats:
        raise ValueError("no images")
    return torch.cat(feats), (torch.cat(logits) if with_logits else None)


# --- cached reference statistics -----------------------------------------------------------

STATS_VERSION = "stats2"  # stats2: the entry holds every real feature ("feats")


def short_hash(text, n=10):
    return hashlib.blake2b(str(text).encode(), digest_size=16).hexdigest()[:n]


def content_hash(t, n=10):
    """Hash of a tensor's bytes (plus shape and dtype): which images exactly went in."""
    t = t.detach().cpu().contiguous()
    h = hashlib.blake2b(f"{tuple(t.shape)}{t.dtype}".encode(), digest_size=16)
    h.update(memoryview(t.numpy()).cast("B"))
    return h.hexdigest()[:n]


def _crop_token(meta):
    if meta.get("crop_box"):
        return "crop" + "-".join(str(v) for v in meta["crop_box"])
    pad = meta.get("pad")
    if pad:
        return f"pad{pad.get('pixels') if isinstance(pad, dict) else pad}"
    return "nocrop"


def source_hash(meta, split):
    """The dataset's source hash for `split` (meta["source_hash"] may be per split), or None."""
    src = meta.get("source_hash")
    if isinstance(src, dict):
        src = src.get(split)
    return str(src) if src else None


def reference_key(dataset, split, images, backbone):
    """Cache file stem naming everything the statistics depend on: dataset, split, crop,
    resolution, sample count, backbone (with its weights hash), the dataset's source hash and a
    hash of the exact images (covers subsets, limits and any preprocessing change)."""
    src = source_hash(dataset.meta, split)
    parts = [dataset.name, split, _crop_token(dataset.meta), f"{images.shape[-1]}px", f"n{len(images)}",
             backbone, f"src{short_hash(src) if src else 'none'}", f"x{content_hash(images)}", STATS_VERSION]
    return "-".join("".join(c if c.isalnum() or c in "._-" else "_" for c in str(p)) for p in parts)


def reference_stats(images, dataset, split, backbone, features_fn, *, cache_dir, kid_max=10_000, seed=0):
    """Real-data reference for FD/KID and precision/recall/density/coverage, computed once and
    cached as <cache_dir>/<key>.pt: {"mu", "sigma" (float64), "kid_feats" (float32, a seeded
    random subset of at most `kid_max` rows: KID needs real features, and 10k x 2048 floats is
    80 MB), "feats" (float32, every row in the order of `images`: the nearest-neighbour metrics
    need the whole real sample), "n", "key", "backbone"}.
    `features_fn(images) -> (N, d)`: e.g. lambda x: inception_features([x], net, dev,
    with_logits=False, dtype=torch.float32)[0], or a DomainClassifier's .features."""
    key = reference_key(dataset, split, images, backbone)
    path = Path(cache_dir) / f"{key}.pt"
    cached = read_entry(path, lambda obj: _checked_stats(obj, key), "statistics cache file")
    if cached is not None:
        return cached
    feats = torch.as_tensor(features_fn(images))
    mu, sigma = feature_stats(feats)
    g = torch.Generator().manual_seed(seed)
    keep = torch.randperm(len(feats), generator=g)[:kid_max]
    obj = {"mu": mu, "sigma": sigma, "kid_feats": feats[keep].float().cpu().contiguous(),
           "feats": feats.float().cpu().contiguous(), "n": len(feats), "key": key, "backbone": backbone,
           "dataset": dataset.name, "split": split}
    save_entry(obj, path)
    return obj


def _checked_stats(obj, key):
    """A cached reference of `key` whose statistics fit together: mu (d,), sigma (d, d),
    kid_feats (m, d) and feats (n, d), all finite; else ValueError (the entry is computed again)."""
    if not isinstance(obj, dict) or obj.get("key") != key:
        raise ValueError(f"not the statistics of key {key}")
    mu, sigma, kid, feats = (obj.get(k) for k in ("mu", "sigma", "kid_feats", "feats"))
    if not all(isinstance(t, torch.Tensor) for t in (mu, sigma, kid, feats)):
        raise ValueError("mu, sigma, kid_feats and feats must be tensors")
    d = mu.shape[0] if mu.dim() == 1 else -1
    if d < 1 or sigma.shape != (d, d) or kid.dim() != 2 or kid.shape[1] != d or len(kid) < 1:
        raise ValueError(f"shapes do not fit: mu {tuple(mu.shape)}, sigma {tuple(sigma.shape)}, "
                         f"kid_feats {tuple(kid.shape)}")
    if feats.shape != (obj.get("n"), d):
        raise ValueError(f"feats {tuple(feats.shape)} is not ({obj.get('n')}, {d})")
    if not all(torch.isfinite(t).all() for t in (mu, sigma, kid, feats)):
        raise ValueError("non-finite statistics")
    return obj
