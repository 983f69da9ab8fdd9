"""Score trained models: generation, reconstruction and representation, plus their figures.

`Evaluator` holds what every run of a benchmark shares and builds it once: the domain
classifier, the Inception network and the real-data reference statistics. Models are used
only through encode / decode / sample_latent / pooled_features.
"""
import os
import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import save_image  # noqa: E402

import metrics  # noqa: E402

EVAL_NOISE_OFFSET = 10_000  # the fixed noise of seed s comes from generator seed s + offset


def _subset(split, n, seed=0):
    """The same deterministic subset for every run (seeded by the dataset, not the run)."""
    if len(split.x) <= n:
        return split.x, split.y
    idx = torch.randperm(len(split.x), generator=torch.Generator().manual_seed(seed))[:n]
    return split.x[idx], split.y[idx]


def _count_tag(n):
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def _to_unit(x):
    """Model space -> the space metrics are reported in: pixels in [0, 1]; points unchanged."""
    return (x.float() + 1) / 2 if x.dim() == 4 else x.float()


def crelu(h):
    """BigBiGAN's probe features: CReLU of the pooled map (the probe standardises, which is the BN)."""
    return torch.cat([h.clamp(min=0), (-h).clamp(min=0)], 1)


class Evaluator:
    def __init__(self, data, cfg, runtime, fid_weights=None):
        self.data, self.ec, self.runtime = data, cfg["eval"], runtime
        self.images = data.kind == "image"
        self.notes = {}  # column -> what it was computed on, for the table's protocol header
        self.domain = self.domain_ref = self.inception = self.inception_ref = self.skip_reason = None
        if not self.images:
            self.notes["modes_covered"] = (f"ALI's criterion on {self.ec['gen_samples']} samples: a mode counts when "
                                           "enough samples lie within 3 std of its centre")
            return
        name, n_gen = data.name, self.ec["gen_samples"]
        self.domain = metrics.get_domain_classifier(data, runtime.device)
        real, _ = _subset(data.train, n_gen)
        self.domain_ref = metrics.reference_stats(real, data, "train", self.domain.key, self.domain.features)
        backbone = (f"domain CNN trained on {name} train labels (test accuracy {self.domain.test_accuracy:.4f}, "
                    f"key {self.domain.key})")
        self.notes[f"fd_{name}"] = f"Frechet distance in {backbone} features; {len(real)} real train vs {n_gen} generated; not FID"
        self.notes[f"cs_{name}"] = f"Inception-Score analogue with the same classifier's posteriors, {n_gen} generated"
        self.notes["semantic_recon"] = "how often the domain classifier gives x and G(E(x)) the same label (test split)"
        self._setup_inception(fid_weights)

    def _setup_inception(self, fid_weights):
        n = self.ec["inception_samples"]
        if n <= 0:
            return
        explicit = fid_weights or os.environ.get("BIGAN_BENCH_FID_WEIGHTS")
        if self.runtime.device.type != "cuda" and not explicit:
            self.skip_reason = ("Inception metrics skipped: on CPU they cost about 0.25 s per image; pass "
                                "--fid-weights PATH (or set BIGAN_BENCH_FID_WEIGHTS) to compute them anyway.")
        else:
            net, reason = metrics.load_inception(fid_weights, self.runtime.device)
            self.skip_reason = reason and f"Inception metrics left empty: {reason}"
            if net is not None:
                net.eval()
                self.inception = net
                real, _ = _subset(self.data.train, n)
                feats = lambda x: metrics.inception_features([x], net, self.runtime.device, with_probs=False,  # noqa: E731
                                                             dtype=torch.float32)[0]
                self.inception_ref = metrics.reference_stats(real, self.data, "train", net.backbone, feats)
                tag = _count_tag(n)
                for col in ("fid", "is", "kid"):
                    self.notes[f"{col}_{tag}"] = (f"{col.upper()} with the TF-ported InceptionV3 (torch-fidelity "
                                                  f"inception-v3-compat, weights sha256 {net.weights_sha256[:12]}), "
                                                  f"{n} generated vs {len(real)} real train images, uint8 by rounding")
        if self.skip_reason:
            print(self.skip_reason, file=sys.stderr)

    # --- one run ----------------------------------------------------------------------------
    def _batched(self, fn, x):
        bs = self.ec["eval_batch_size"]
        return torch.cat([fn(self.runtime.batch(x[i:i + bs])).float().cpu() for i in range(0, len(x), bs)])

    def _timed(self, seconds, key, fn):
        t = time.perf_counter()
        out = fn()
        seconds[key] = round(time.perf_counter() - t, 3)
        return out

    @torch.no_grad()
    def evaluate(self, model, run_dir, seed):
        """{metric: value, "metric_seconds": {...}, "protocol": {...}}; writes the figures."""
        model.eval()
        try:
            return self._evaluate(model, run_dir, seed)
        finally:
            model.train()

    def _evaluate(self, model, run_dir, seed):
        data, ec, dev = self.data, self.ec, self.runtime.device
        out, sec = {}, {}
        g = torch.Generator().manual_seed(seed + EVAL_NOISE_OFFSET)
        x_test = data.test.x

        z_test = self._timed(sec, "encode", lambda: self._batched(model.encode, x_test))
        rec = self._timed(sec, "recon_mse", lambda: self._batched(lambda z: model.decode(z.to(dev)), z_test))
        real_unit = _to_unit(self.runtime.batch(x_test).cpu())
        out["recon_mse"] = metrics.reconstruction_mse(real_unit, _to_unit(rec))

        def cycle():
            z = model.sample_latent(len(x_test), generator=g)
            zr = self._batched(lambda zz: model.encode(model.decode(zz.to(dev))), z.cpu())
            return metrics.latent_cycle_mse(z.cpu(), zr)
        out["latent_cycle_mse"] = self._timed(sec, "latent_cycle_mse", cycle)

        x_tr, y_tr = _subset(data.train, ec["probe_max_train"])
        f_tr = self._batched(model.encode, x_tr)
        val = None
        if data.valid is not None:
            xv, yv = _subset(data.valid, ec["probe_max_train"])
            val = (self._batched(model.encode, xv), yv)
        probe = self._timed(sec, "probe_acc", lambda: metrics.linear_probe(f_tr, y_tr, z_test, data.test.y, device=dev, val=val))
        out["probe_acc"], out["probe_bal_acc"] = probe["accuracy"], probe["balanced_accuracy"]
        self.notes["probe_acc"] = (f"logistic regression on standardised E(x), C chosen on a validation slice; "
                                   f"{len(x_tr)} train, {len(x_test)} test; majority-class baseline "
                                   f"{probe['majority_accuracy']:.4f}")
        if model.pooled_features(self.runtime.batch(x_test[:2])) is not None:
            pooled = lambda x: crelu(model.pooled_features(x))  # noqa: E731
            out["probe_pool_acc"] = self._timed(sec, "probe_pool_acc", lambda: metrics.linear_probe(
                self._batched(pooled, x_tr), y_tr, self._batched(pooled, x_test), data.test.y, device=dev,
                val=val and (self._batched(pooled, xv), yv))["accuracy"])
        out["knn_acc"] = self._timed(sec, "knn_acc", lambda: metrics.knn_accuracy(f_tr, y_tr, z_test, data.test.y, k=20, device=dev))

        if self.images:
            self._timed(sec, "generation", lambda: out.update(self._generation(model, g, x_test, rec)))
        else:
            samples = torch.cat(list(self._samples(model, g, ec["gen_samples"])))
            cov = self._timed(sec, "modes_covered", lambda: metrics.mode_coverage(samples, data.meta["centres"], data.meta["std"]))
            out.update({k: cov[k] for k in ("modes_covered", "high_quality", "kl_modes")})

        grid = model.decode(model.sample_latent(ec["grid_size"], generator=torch.Generator().manual_seed(seed + EVAL_NOISE_OFFSET))).float().cpu()
        n_rec = min(32, len(x_test))
        _draw(grid, real_unit[:n_rec], _to_unit(rec[:n_rec]), data, run_dir)
        out["metric_seconds"] = sec
        out["protocol"] = dict(self.notes)
        return out

    def _samples(self, model, g, n):
        """n decoded prior samples, in eval-size batches, as float tensors on the CPU."""
        bs = self.ec["eval_batch_size"]
        for i in range(0, n, bs):
            yield model.decode(model.sample_latent(min(bs, n - i), generator=g)).float().cpu()

    def _generation(self, model, g, x_test, rec):
        name, out, clf = self.data.name, {}, self.domain
        feats, probs = [], []
        for batch in self._samples(model, g, self.ec["gen_samples"]):
            u8 = metrics.to_uint8(batch)
            feats.append(clf.features(u8))
            probs.append(clf.probs(u8))
        mu, sigma = metrics.feature_stats(torch.cat(feats))
        out[f"fd_{name}"] = metrics.frechet_from_stats(self.domain_ref["mu"], self.domain_ref["sigma"], mu, sigma)
        out[f"cs_{name}"] = metrics.classifier_score(torch.cat(probs), multilabel=clf.multilabel)[0]
        out["semantic_recon"] = metrics.label_agreement(clf.predict(x_test), clf.predict(metrics.to_uint8(rec)))
        if self.inception is not None:
            n, ref = self.ec["inception_samples"], self.inception_ref
            f, p = metrics.inception_features((metrics.to_uint8(b) for b in self._samples(model, g, n)),
                                              self.inception, self.runtime.device)
            tag = _count_tag(n)
            out[f"fid_{tag}"] = metrics.frechet_from_stats(ref["mu"], ref["sigma"], *metrics.feature_stats(f))
            out[f"is_{tag}"] = metrics.inception_score(p, splits=min(10, len(p)))[0]
            out[f"kid_{tag}"] = metrics.kernel_distance(ref["kid_feats"], f.float())[0]
        return out


def _draw(samples, real, rec, data, run_dir):
    if samples.dim() == 4:
        save_image(_to_unit(samples), run_dir / "samples.png", nrow=8)
        pairs = torch.stack([real, rec], 1).flatten(0, 1)  # original beside its reconstruction
        save_image(pairs, run_dir / "recon.png", nrow=8)
        return
    centres = torch.tensor(data.meta.get("centres", []), dtype=torch.float32).reshape(-1, 2)
    for name, parts in (("samples.png", [(samples, "G(z)", "tab:blue")]),
                        ("recon.png", [(real, "x", "tab:gray"), (rec, "G(E(x))", "tab:red")])):
        fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
        for pts, label, colour in parts:
            ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.6, label=label, c=colour)
        if len(centres):
            ax.scatter(centres[:, 0], centres[:, 1], marker="x", c="k", s=20, label="mode centres")
        ax.set_aspect("equal")
        ax.legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        fig.savefig(run_dir / name)
        plt.close(fig)
