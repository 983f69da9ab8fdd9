"""perf's evaluation side: how fast the feature networks and the probe score a run, each timed
in steady state (every batch shape warmed first), with the precisions a GPU could use measured
against IEEE fp32 on the same images."""
import contextlib
import time

import torch

import metrics

from ..core.protocol import DINOV2_BATCH, INCEPTION_BATCH, subset
from ..core.weights import Weights


def inception_speed(data, runtime, n, weights=None):
    """(images/s in IEEE fp32, what was timed, {precision: its rate and its distance from IEEE fp32})
    of InceptionV3 features, with weights.fid's file if named (`weights`: a core.weights.Weights).
    Throughput does not depend on the weights, so without the standard file the same architecture
    is timed with random weights, and says so."""
    net, reason = metrics.load_inception((weights or Weights()).fid, runtime.device)
    label = "standard weights"
    if net is None:
        import unittest.mock as mock

        import torch_fidelity.feature_extractor_inceptionv3 as fe
        with mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: {}), \
                mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict",
                                  lambda self, sd, strict=True: None):
            net = fe.FeatureExtractorInceptionV3(metrics.inception.BACKBONE, metrics.inception.FEATURES)
            net = net.to(runtime.device)
        label = "random weights (standard file unavailable; speed only)"
    net.eval()
    images, _ = subset(data.test if len(data.test) >= n else data.train, n)
    bs = INCEPTION_BATCH[runtime.device.type]
    modes = feature_precisions(lambda x: metrics.inception_features([x], net, runtime.device, batch_size=bs)[0],
                               images, bs, runtime)
    return modes["ieee"]["images_per_s"], f"{label}, batch {bs}, {len(images)} images {tuple(images.shape[1:])}", modes


def batch_shapes(n, batch_size):
    """The batch sizes a pass over n images in batches of `batch_size` runs: the full one and the remainder."""
    return sorted({min(batch_size, n), n % batch_size} - {0}, reverse=True)


PRECISIONS = ("ieee", "tf32", "bf16")  # evaluation's policy (IEEE fp32), and what a GPU could use instead


@contextlib.contextmanager
def feature_precision(mode, device):
    """Matmuls and convolutions in `mode`: IEEE fp32, TF32 (on GPUs that have it; a CPU has none, so
    there it is IEEE fp32 again) or bf16 autocast. Restores evaluation's settings after."""
    saved = (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision)
    fp32 = "tf32" if mode == "tf32" else "ieee"
    torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = fp32
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode == "bf16"):
            yield
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = saved


def feature_precisions(features, images, batch_size, runtime):
    """{precision: {"images_per_s", and beside IEEE fp32's own features "max_rel_diff" (the largest
    feature difference over the largest IEEE feature) and "fd_shift" (how far the Fréchet distance
    between the two halves of the images moves)}} for `features(uint8 batch) -> (N, D) features`.
    Each precision first sees every batch shape the timed pass will (the full batch and the
    remainder), so that no autotuning or lazy initialisation is timed: steady state."""
    out, reference = {}, None
    for mode in PRECISIONS:
        with feature_precision(mode, runtime.device), torch.inference_mode():
            for k in batch_shapes(len(images), batch_size):  # warm-up: every shape, then the timed pass
                features(images[:k])
            runtime.synchronize()
            t = time.perf_counter()
            feats = features(images).double()
            runtime.synchronize()
            rate = len(images) / (time.perf_counter() - t)
        row = {"images_per_s": round(rate, 1)}
        half = len(feats) // 2
        fd = metrics.frechet_distance(feats[:half], feats[half:]) if half > 1 else float("nan")
        if reference is None:
            reference = (feats, fd)
            row["fd_halves"] = round(fd, 4)
        else:
            scale = reference[0].abs().max().clamp_min(1e-12)
            row["max_rel_diff"] = float(f"{((feats - reference[0]).abs().max() / scale).item():.3g}")
            row["fd_shift"] = float(f"{fd - reference[1]:.3g}")
        out[mode] = row
    return out


def dinov2_speed(data, runtime, n, weights=None):
    """(images/s, what was timed) of DINOv2 ViT-L/14 features as evaluation takes them. As for
    InceptionV3, without the weights file the same network is timed with random weights, and says so."""
    net, _ = metrics.load_dinov2((weights or Weights()).dinov2, runtime.device, download=False)
    label = "standard weights"
    if net is None:
        import unittest.mock as mock

        from torch_fidelity.feature_extractor_dinov2 import FeatureExtractorDinoV2

        def random_hub_model(repo, model, *args, **kwargs):  # what torch-fidelity asks torch hub for
            return metrics.dinov2.build(size=FeatureExtractorDinoV2.INPUT_IMAGE_SIZE)

        with mock.patch.object(torch.hub, "load", random_hub_model):
            net = FeatureExtractorDinoV2(metrics.dinov2.MODEL, ["dinov2"]).to(runtime.device)
        label = "random weights (weights file unavailable; speed only)"
    net.eval()
    images, _ = subset(data.test if len(data.test) >= n else data.train, n)
    bs = DINOV2_BATCH[runtime.device.type]
    for k in batch_shapes(len(images), bs):  # warm-up: every batch shape the timed pass sees
        metrics.dinov2_features([images[:k]], net, runtime.device, batch_size=bs)
    runtime.synchronize()
    t = time.perf_counter()
    metrics.dinov2_features([images], net, runtime.device, batch_size=bs)
    runtime.synchronize()
    rate = len(images) / (time.perf_counter() - t)
    return rate, f"{label}, batch {bs}, {len(images)} images {tuple(images.shape[1:])}"


def probe_speed(model, data, runtime, n_train):
    """The linear probe on E's features, torch back end on the device against scikit-learn."""
    x_tr, y_tr = subset(data.train, n_train)
    model.eval()  # batch norm on its running statistics, as in evaluation
    with torch.inference_mode():
        enc = lambda x: torch.cat([model.encode(runtime.batch(x[i:i + 500])).float().cpu()  # noqa: E731
                                   for i in range(0, len(x), 500)])
        f_tr, f_te = enc(x_tr), enc(data.test.x)
    out = {}
    for backend in ("torch", "sklearn"):
        t = time.perf_counter()
        r = metrics.linear_probe(f_tr, y_tr, f_te, data.test.y, device=runtime.device, backend=backend)
        out[backend] = {"seconds": round(time.perf_counter() - t, 3), "accuracy": round(r["accuracy"], 4)}
    labels = tuple(data.test.y.shape[1:]) or "classes"
    out["setting"] = f"{len(x_tr)} train, {len(f_te)} test, {f_tr.shape[1]}-d E(x), labels {labels}"
    return out
