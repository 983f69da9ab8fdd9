"""The feature networks that need weights from outside: InceptionV3 (FID, IS, KID and their
precision/recall/density/coverage), DINOv2 ViT-L/14 and LPIPS's VGG16.

Each runs from a weights path, the $ENV variable or the torch hub cache, and downloads only when
online; without weights its columns stay empty, with the reason in the protocol and on stderr,
never filled by another network. On a CPU they are skipped unless their weights are named, for
their cost. `Backbones` is a part of `Evaluator`: it reads the run's device, data and evaluation
config from it and writes its protocol notes into `self.notes`.
"""
import os
import sys

import torch

import metrics
from metrics.frechet import FIDELITY_SEED

from ..core.io import default_cache_dir
from ..core.protocol import DINOV2_BATCH, INCEPTION_BATCH, KID_SUBSET, LPIPS_BATCH, LPIPS_COLUMN, count_tag, dinov2_tag


class Backbones:
    def _setup_inception(self, fid_weights):
        n = self.ec.inception_samples
        if n <= 0:
            return
        if self._cpu_skip(fid_weights or os.environ.get("BIGAN_BENCH_FID_WEIGHTS"), "--fid-weights PATH",
                          "BIGAN_BENCH_FID_WEIGHTS", "about 0.25 s per image"):
            self.skip_reason = ("Inception metrics skipped: on CPU they cost about 0.25 s per image; pass "
                                "--fid-weights PATH (or set BIGAN_BENCH_FID_WEIGHTS) to compute them anyway.")
        else:
            net, reason = metrics.load_inception(fid_weights, self.runtime.device)
            self.skip_reason = reason and f"Inception metrics left empty: {reason}"
            if net is not None:
                net.eval()
                self.inception = net
                real, split = self.gen_reference(n)
                feats = lambda x: metrics.inception_features(  # noqa: E731
                    [x], net, self.runtime.device, with_logits=False, dtype=torch.float32,
                    batch_size=INCEPTION_BATCH[self.runtime.device.type])[0]
                self.inception_ref = metrics.reference_stats(real, self.data, split, net.backbone, feats,
                                                             cache_dir=default_cache_dir() / "stats")
                tag = count_tag(n)
                for col in ("fid", "is", "kid"):
                    self.notes[f"{col}_{tag}"] = (f"{col.upper()} with the TF-ported InceptionV3 (torch-fidelity "
                                                  f"inception-v3-compat, weights sha256 {net.weights_sha256[:12]}), "
                                                  f"{n} generated vs {len(real)} real {split} images, uint8 by "
                                                  "rounding")
                self.notes[f"is_{tag}"] += f"; {min(10, n)} splits after a shuffle with seed {FIDELITY_SEED}"
                self._prdc_notes(tag, "the same InceptionV3's pool features", len(real), n_gen=n, swept=False)
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

    def _cpu_skip(self, explicit, flag, env, cost):
        """The reason a backbone is not run on a CPU unless its weights are named (like Inception's)."""
        if self.runtime.device.type == "cuda" or explicit:
            return None
        return (f"skipped on a CPU, where it costs {cost}; pass {flag} (or set ${env}) to compute it anyway")

    def _load(self, mod, load, weights, arg, cost, note_key, what):
        """The network of backbone module `mod` by `load(weights, device)`, or None with the reason
        left in the protocol: skipped on a CPU unless its weights are named, or not found."""
        reason = self._cpu_skip(weights or os.environ.get(mod.ENV_WEIGHTS), f"{mod.FLAG} {arg}", mod.ENV_WEIGHTS, cost)
        net = None
        if reason is None:
            net, reason = load(weights, self.runtime.device)
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
        net = self._load(mod, mod.load_dinov2, weights, "PATH", "seconds per image (ViT-L/14 at 224 px)",
                         f"fd_{tag}", what)
        if net is None:
            return
        self.dinov2 = net
        real, split = self.gen_reference(n)
        self.dinov2_ref = metrics.reference_stats(real, self.data, split, net.backbone, self._dinov2_features,
                                                  cache_dir=default_cache_dir() / "stats")
        self.notes[f"fd_{tag}"] = (f"Frechet distance in DINOv2 ViT-L/14 features (Stein et al. 2023; torch-fidelity "
                                   f"{mod.MODEL}: the final-norm class token, {net.model.embed_dim} features, of the "
                                   "image resized to "
                                   f"224 px by its TF-1 compatible bilinear resize and ImageNet-normalised; weights "
                                   f"sha256 {net.weights_sha256[:12]}), {n} generated vs {len(real)} real {split} "
                                   "images, uint8 by rounding, grey repeated to 3 channels")
        self._prdc_notes(tag, "the same DINOv2 ViT-L/14 features", len(real), n_gen=n, swept=False)

    def _dinov2_features(self, x):
        dev = self.runtime.device
        return metrics.dinov2_features([x], self.dinov2, dev, batch_size=DINOV2_BATCH[dev.type])

    def _setup_lpips(self, weights):
        """recon_lpips_vgg16 (metrics.lpips), on the main process only: it alone reconstructs the test split."""
        if not self.runtime.is_main:
            return
        mod = metrics.lpips
        net = self._load(mod, mod.load_lpips, weights, "DIR", "about 0.06 s per test image (two VGG16 passes at 64 px)",
                         LPIPS_COLUMN, f"LPIPS ({LPIPS_COLUMN})")
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

    def _lpips(self, a, b):
        """LPIPS of each pair a[i], b[i] (uint8 images): (N,) float64."""
        dev = self.runtime.device
        return metrics.lpips_distance(a, b, self.lpips, dev, batch_size=LPIPS_BATCH[dev.type])
