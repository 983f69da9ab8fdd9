"""The feature networks that need weights from outside: InceptionV3 (FID, IS, KID and their
precision/recall/density/coverage), DINOv2 ViT-L/14 and LPIPS's VGG16.

Each runs from the weights path named for it (core/weights.py), the $ENV variable or the torch hub
cache, and downloads only when online; without weights its columns stay empty, with the reason in
the protocol and on stderr, never filled by another network. On a CPU they are skipped unless
their weights are named, for their cost.
"""
import sys

import torch

import metrics
from metrics.frechet import FIDELITY_SEED

from ..core.io import default_cache_dir
from ..core.protocol import DINOV2_BATCH, INCEPTION_BATCH, KID_SUBSET, LPIPS_BATCH, LPIPS_COLUMN, count_tag, dinov2_tag
from .real import gen_reference, prdc_notes


class Backbones:
    """The networks of one benchmark that load weights from outside, set up once for all its runs
    from the paths named for them (`weights`, a core.weights.Weights): `inception`, `dinov2` and
    `lpips` (None where one does not run: points, a sample count of 0, a CPU without named weights,
    weights not found), the statistics of the real sample generated ones are scored against in the
    first two's features (`inception_ref`, `dinov2_ref`: metrics.reference_stats, cached), why
    Inception's columns are empty (`skip_reason`) and the protocol `notes` of their columns. The
    evaluator and the references compute features and distances only through inception_features,
    dinov2_features and lpips_distance, so both compute them alike (dtype, batch size per device)."""

    def __init__(self, data, ec, runtime, weights):
        self.data, self.ec, self.runtime = data, ec, runtime  # ec: a config.Eval
        self.notes = {}  # column -> what it was computed on; the evaluator adds them to its protocol
        self.inception = self.inception_ref = self.skip_reason = None
        self.dinov2 = self.dinov2_ref = self.lpips = None
        if data.kind != "image":  # every one of them reads images
            return
        self._setup_inception(weights)
        self._setup_dinov2(weights)
        self._setup_lpips(weights)

    # --- what the evaluator and the references compute with them ------------------------------
    def inception_features(self, x):
        """InceptionV3's pool features of uint8 images x, float32: the real side of FID and KID."""
        dev = self.runtime.device
        return metrics.inception_features([x], self.inception, dev, with_logits=False, dtype=torch.float32,
                                          batch_size=INCEPTION_BATCH[dev.type])[0]

    def inception_features_and_logits(self, x):
        """(pool features, IS logits) of uint8 images x in one pass: the generated side."""
        dev = self.runtime.device
        return metrics.inception_features([x], self.inception, dev, batch_size=INCEPTION_BATCH[dev.type])

    def dinov2_features(self, x):
        """DINOv2 ViT-L/14's features of uint8 images x."""
        dev = self.runtime.device
        return metrics.dinov2_features([x], self.dinov2, dev, batch_size=DINOV2_BATCH[dev.type])

    def lpips_distance(self, a, b):
        """LPIPS of each pair a[i], b[i] (uint8 images): (N,) float64."""
        dev = self.runtime.device
        return metrics.lpips_distance(a, b, self.lpips, dev, batch_size=LPIPS_BATCH[dev.type])

    # --- set-up ---------------------------------------------------------------------------------
    def cpu_skip(self, named, flag, env, cost):
        """The reason a backbone is not run on a CPU unless its weights are `named` (like Inception's)."""
        if self.runtime.device.type == "cuda" or named:
            return None
        return (f"skipped on a CPU, where it costs {cost}; pass {flag} (or set ${env}) to compute it anyway")

    def _setup_inception(self, weights):
        n = self.ec.inception_samples
        if n <= 0:
            return
        if self.cpu_skip(weights.named("fid"), "--fid-weights PATH", metrics.inception.ENV_WEIGHTS,
                         "about 0.25 s per image"):
            self.skip_reason = ("Inception metrics skipped: on CPU they cost about 0.25 s per image; pass "
                                "--fid-weights PATH (or set BIGAN_BENCH_FID_WEIGHTS) to compute them anyway.")
        else:
            net, reason = metrics.load_inception(weights.fid, self.runtime.device)
            self.skip_reason = reason and f"Inception metrics left empty: {reason}"
            if net is not None:
                net.eval()
                self.inception = net
                real, split = gen_reference(self.data, self.ec, n)
                self.inception_ref = metrics.reference_stats(real, self.data, split, net.backbone,
                                                             self.inception_features,
                                                             cache_dir=default_cache_dir() / "stats")
                tag = count_tag(n)
                for col in ("fid", "is", "kid"):
                    self.notes[f"{col}_{tag}"] = (f"{col.upper()} with the TF-ported InceptionV3 (torch-fidelity "
                                                  f"inception-v3-compat, weights sha256 {net.weights_sha256[:12]}), "
                                                  f"{n} generated vs {len(real)} real {split} images, uint8 by "
                                                  "rounding")
                self.notes[f"is_{tag}"] += f"; {min(10, n)} splits after a shuffle with seed {FIDELITY_SEED}"
                self.notes.update(prdc_notes(self.ec, split, tag, "the same InceptionV3's pool features", len(real),
                                             n_gen=n, swept=False))
                m = min(KID_SUBSET, n, len(self.inception_ref["kid_feats"]))
                clipped = (f" (torch-fidelity's {KID_SUBSET} clipped to the sample count: every subset holds the "
                           "same generated images, so the spread over subsets understates the sampling error)")
                self.notes[f"kid_{tag}"] += f"; 100 subsets of {m}" + (clipped if m < KID_SUBSET else "")
        if self.skip_reason and self.runtime.is_main:
            print(self.skip_reason, file=sys.stderr)

    def _left_empty(self, note_key, what, reason):
        """A backbone that does not run: its reason in the protocol (under `note_key`, a column it
        leaves empty) and on stderr, once."""
        self.notes[note_key] = f"empty: {reason}"
        if self.runtime.is_main:
            print(f"{what} left empty: {reason}", file=sys.stderr)

    def _load(self, network, mod, load, weights, arg, cost, note_key, what):
        """The network of backbone module `mod` (`network`: "lpips" or "dinov2", its field of
        `weights`, a core.weights.Weights) by `load(path, device)`, or None with the reason left in
        the protocol: skipped on a CPU unless its weights are named, or not found."""
        reason = self.cpu_skip(weights.named(network), f"{mod.FLAG} {arg}", mod.ENV_WEIGHTS, cost)
        net = None
        if reason is None:
            net, reason = load(getattr(weights, network), self.runtime.device)
        if net is None:
            self._left_empty(note_key, what, reason)
        return net

    def _setup_dinov2(self, weights):
        """fd_dinov2_<n>, precision_dinov2_<n>, ..., coverage_dinov2_<n> on `eval.dinov2_samples`
        images: DINOv2 ViT-L/14 features (metrics.dinov2), every process (they are sample metrics)."""
        n = self.ec.dinov2_samples
        if n <= 0:
            return
        tag, mod = dinov2_tag(n), metrics.dinov2
        what = f"DINOv2 metrics (fd_, precision_, recall_, density_, coverage_{tag})"
        net = self._load("dinov2", mod, mod.load_dinov2, weights, "PATH", "seconds per image (ViT-L/14 at 224 px)",
                         f"fd_{tag}", what)
        if net is None:
            return
        self.dinov2 = net
        real, split = gen_reference(self.data, self.ec, n)
        self.dinov2_ref = metrics.reference_stats(real, self.data, split, net.backbone, self.dinov2_features,
                                                  cache_dir=default_cache_dir() / "stats")
        self.notes[f"fd_{tag}"] = (f"Frechet distance in DINOv2 ViT-L/14 features (Stein et al. 2023; torch-fidelity "
                                   f"{mod.MODEL}: the final-norm class token, {net.model.embed_dim} features, of the "
                                   "image resized to "
                                   f"224 px by its TF-1 compatible bilinear resize and ImageNet-normalised; weights "
                                   f"sha256 {net.weights_sha256[:12]}), {n} generated vs {len(real)} real {split} "
                                   "images, uint8 by rounding, grey repeated to 3 channels")
        self.notes.update(prdc_notes(self.ec, split, tag, "the same DINOv2 ViT-L/14 features", len(real), n_gen=n,
                                     swept=False))

    def _setup_lpips(self, weights):
        """recon_lpips_vgg16 (metrics.lpips), on the main process only: it alone reconstructs the test split."""
        if not self.runtime.is_main:
            return
        mod = metrics.lpips
        net = self._load("lpips", mod, mod.load_lpips, weights, "DIR",
                         "about 0.06 s per test image (two VGG16 passes at 64 px)", LPIPS_COLUMN,
                         f"LPIPS ({LPIPS_COLUMN})")
        if net is None:
            return
        self.lpips = net
        sha = net.weights_sha256
        self.notes[LPIPS_COLUMN] = (f"mean LPIPS (Zhang et al. 2018; torch-fidelity {mod.BACKBONE}: ImageNet VGG16 "
                                    f"features, sha256 {sha[mod.VGG16_FILE][:12]}, weighted by the LPIPS v0.1 linear "
                                    f"layers, sha256 {sha[mod.LPIPS_FILE][:12]}) between each of the "
                                    f"{len(self.data.test.x)} test images x and G(E(x)), both uint8 by rounding, grey "
                                    f"repeated to 3 channels, resized to {mod.RESIZE} px by torch-fidelity's resize "
                                    "(bilinear up, area down; LPIPS was trained on 64 px patches): lower is closer")
