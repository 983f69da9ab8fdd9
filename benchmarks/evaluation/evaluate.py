"""Score trained models: generation, reconstruction and representation, plus their figures.

`Evaluator` holds what every run of a benchmark shares and builds it once: the domain
classifier and its real-data reference statistics, the Inception, DINOv2 and LPIPS networks (a
`Backbones`, backbones.py) and the model-free references (a `References`, references.py). The
probes and kNN on E's codes are representation.py's. Models are used only through encode /
decode / sample_latent / pooled_features.
"""
import csv
import functools
import io
import math
import time

import torch

import metrics
from metrics.frechet import FIDELITY_SEED

from ..core.io import atomic_write_text, default_cache_dir
from ..core.protocol import (FIGURE_SEED, INTERP_PAIRS, INTERP_STEPS, KID_SUBSET, LPIPS_COLUMN, NN_K, NN_QUERIES,
                             count_tag, dinov2_tag, eval_noise, subset)
from ..core.protocol import to_unit as _to_unit
from ..core.weights import Weights
from . import figures
from .backbones import Backbones
from .real import gen_reference, prdc_notes, score_prdc
from .references import References
from .representation import label_notes, representation_scores


def truncated_latent(model, n, threshold, generator):
    """n prior draws with every coordinate outside [-threshold, threshold] redrawn until inside
    (BigGAN's truncation trick). threshold None: the untruncated prior."""
    z = model.sample_latent(n, generator=generator)
    while threshold is not None and (bad := z.abs() > threshold).any():
        z = torch.where(bad, model.sample_latent(n, generator=generator), z)
    return z


def _uniform_modes(data, n):
    """The mode scores of no model at all: n points uniform over the square that holds the
    centres with half a spacing to spare (grid25: [-5, 5]^2), seed 0. Spread without any mode
    learnt already covers most modes under both rules; a model's counts mean little unless
    its high_quality is well above this."""
    c = torch.as_tensor(data.meta["centres"], dtype=torch.float64)
    half = torch.cdist(c, c).masked_fill(torch.eye(len(c), dtype=torch.bool), float("inf")).min() / 2
    lo, hi = c.min(0).values - half, c.max(0).values + half
    x = lo + (hi - lo) * torch.rand(n, c.shape[1], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    r = metrics.mode_coverage(x, c, data.meta["std"])
    return (f"uniform noise over {[round(v, 3) for v in lo.tolist()]} to {[round(v, 3) for v in hi.tolist()]}, "
            f"{n} points: modes_nearest {r['modes_nearest']}, modes_3sigma {r['modes_3sigma']}, "
            f"high_quality {r['high_quality']:.4f}")


class _InDrawOrder:
    """The one-process store of _sample_outputs: every batch is decoded here in draw order, so
    the outputs are concatenated as they come (no torchmetrics import, which costs seconds)."""

    def __init__(self, n_out):
        self.cols = [[] for _ in range(n_out)]

    def update(self, index, *outputs):
        for col, o in zip(self.cols, outputs):
            col.append(o.detach())

    def compute(self):
        return tuple(torch.cat(col) for col in self.cols)


class Evaluator:
    """The scorer of one benchmark: every run of its matrix is scored by `evaluate` against what is
    built here once. It holds the data, the eval config (`ec`) and runtime; the domain classifier
    and its real reference statistics (`domain`, `domain_ref`; images) or the real points
    (`real_points`; 2-D points); the networks with weights from outside (`backbones`, backbones.py);
    the model-free references (`refs`, references.py, computed when first asked for); and the
    protocol `notes`, what each column was computed on, which every run's metrics.json carries."""

    def __init__(self, data, cfg, runtime, weights=None):
        self.data, self.ec, self.runtime = data, cfg.eval, runtime  # ec: a config.Eval
        self.images = data.kind == "image"
        self.notes = {}  # column -> what it was computed on, for the table's protocol header
        self.domain = self.domain_ref = self.real_points = None
        self.label_ns, notes = label_notes(data, self.ec)  # the label-efficiency probes' label counts
        self.notes.update(notes)
        if self.images:
            self._setup_domain()
        else:
            self._setup_points()
        # weights: the paths named for them (a core.weights.Weights; None: none named)
        self.backbones = Backbones(data, self.ec, runtime, weights or Weights())  # none on points
        self.notes.update(self.backbones.notes)
        real_feats = self.domain_ref["feats"] if self.images else self.real_points
        self.refs = References(data, self.ec, runtime, self.label_ns, self.domain, real_feats, self.backbones)

    def _setup_points(self):
        """2-D points: the notes of mode coverage against the mixture's centres, and the real points
        generated ones are scored against."""
        n = self.ec.gen_samples
        self.notes["modes_nearest"] = (f"ALI's rule on {n} samples: each sample to its nearest centre, a mode "
                                       "dropped only when no sample lands on it")
        self.notes["modes_3sigma"] = (f"VEEGAN/PacGAN's rule on the first {min(n, 2500)} of them: a mode counts "
                                      "when it is the nearest centre of at least one sample within 3 std; "
                                      "high_quality and kl_modes on the same samples")
        self.notes["modes_chance"] = _uniform_modes(self.data, n)
        self.real_points, split = gen_reference(self.data, self.ec, n)
        self.notes.update(prdc_notes(self.ec, split, "points", "the raw 2-D points", len(self.real_points)))

    def _setup_domain(self):
        """Images: the domain classifier trained on the dataset's train labels (cached), and its
        statistics of the real sample generated ones are scored against."""
        data, name, n_gen = self.data, self.data.name, self.ec.gen_samples
        self.domain = metrics.get_domain_classifier(data, self.runtime.device, default_cache_dir() / "domain")
        real, split = gen_reference(data, self.ec, n_gen)
        self.domain_ref = metrics.reference_stats(real, data, split, self.domain.key, self.domain.features,
                                                  cache_dir=default_cache_dir() / "stats")
        backbone = (f"domain CNN trained on {name} train labels (test accuracy {self.domain.test_accuracy:.4f}, "
                    f"key {self.domain.key})")
        self.notes[f"fd_{name}"] = (f"Frechet distance in {backbone} features; {len(real)} real {split} vs {n_gen} "
                                    "generated; not FID")
        self.notes[f"cs_{name}"] = (f"Inception-Score analogue with the same classifier's posteriors, {n_gen} "
                                    f"generated, 10 splits after a shuffle with seed {FIDELITY_SEED}")
        self.notes["semantic_recon"] = "how often the domain classifier gives x and G(E(x)) the same label (test split)"
        self.notes[f"recon_fd_{name}"] = (f"Frechet distance in the same domain CNN features between the "
                                          f"{len(data.test.x)} test images x and their reconstructions G(E(x)): how "
                                          "real the reconstructions look as a set, 0 when they match the test set's "
                                          "feature statistics; blur raises it where it can lower recon_mse")
        self.notes.update(prdc_notes(self.ec, split, name, f"the domain CNN's features (key {self.domain.key})",
                                     len(real)))

    def references(self):
        """The model-free references (references.py: {"notes", "values", "key"}), computed once per
        protocol and cached; their notes join the protocol of every run scored after."""
        refs = self.refs.compute()
        self.notes.update(refs["notes"])
        return refs

    # --- one run ----------------------------------------------------------------------------
    def _batched(self, fn, x):
        bs = self.ec.eval_batch_size
        return torch.cat([fn(self.runtime.batch(x[i:i + bs])).float().cpu() for i in range(0, len(x), bs)])

    def _timed(self, seconds, key, fn):
        t = time.perf_counter()
        out = fn()
        seconds[key] = round(time.perf_counter() - t, 3)
        return out

    @torch.inference_mode()
    def evaluate(self, model, run_dir, seed):
        """{metric: value, "metric_seconds": {...}, "protocol": {...}}; writes the figures."""
        model.eval()
        try:
            return self._evaluate(model, run_dir, seed)
        finally:
            model.train()

    def _evaluate(self, model, run_dir, seed):
        out, sec = {}, {}
        g = eval_noise(seed)
        x_test = self.data.test.x
        if not self.runtime.is_main:
            # The other torchrun processes only share the sample metrics' decoding: they make the
            # draws of rank 0's latent cycle (so g stays in step), then join each shared call in turn.
            model.sample_latent(len(x_test), generator=g)
            if self.images:
                self._generation(model, g, None, None)
            else:
                self._scores(model, g, self.ec.gen_samples, shared=True)
            self._truncation_sweep(model, seed, run_dir)
            return {}

        z_test, rec = self._reconstruction(model, g, x_test, out, sec)
        out.update(self._representation(model, x_test, z_test, sec))
        if self.images:
            self._timed(sec, "generation", lambda: out.update(self._generation(model, g, x_test, rec)))
            self._timed(sec, "figures", lambda: self._latent_figures(model, x_test, z_test, run_dir))
        else:
            out.update(self._timed(sec, "modes", lambda: self._scores(model, g, self.ec.gen_samples, shared=True)))
        self._timed(sec, "truncation", lambda: self._truncation_sweep(model, seed, run_dir))

        grid = model.decode(model.sample_latent(self.ec.grid_size, generator=eval_noise(seed))).float().cpu()
        n_rec = min(32, len(x_test))
        figures.samples_and_recon(grid, self.runtime.batch(x_test[:n_rec]).cpu(), rec[:n_rec], self.data, run_dir)
        out["metric_seconds"] = sec
        out["protocol"] = dict(self.notes)
        return out

    def _reconstruction(self, model, g, x_test, out, sec):
        """recon_mse (and LPIPS where it runs) of G(E(x)) on the test split, and the latent cycle
        E(G(z)) on draws of g, into `out`; returns (E's test codes, the reconstructions)."""
        dev = self.runtime.device
        z_test = self._timed(sec, "encode", lambda: self._batched(model.encode, x_test))
        rec = self._timed(sec, "recon_mse", lambda: self._batched(lambda z: model.decode(z.to(dev)), z_test))
        real_unit = _to_unit(self.runtime.batch(x_test).cpu())
        out["recon_mse"] = metrics.reconstruction_mse(real_unit, _to_unit(rec))
        if self.backbones.lpips is not None:
            out[LPIPS_COLUMN] = self._timed(sec, LPIPS_COLUMN, lambda: self.backbones.lpips_distance(
                x_test, metrics.to_uint8(rec)).mean().item())

        def cycle():
            z = model.sample_latent(len(x_test), generator=g)
            zr = self._batched(lambda zz: model.encode(model.decode(zz.to(dev))), z.cpu())
            return metrics.latent_cycle_mse(z.cpu(), zr)
        out["latent_cycle_mse"] = self._timed(sec, "latent_cycle_mse", cycle)
        return z_test, rec

    def _representation(self, model, x_test, z_test, sec):
        """The representation columns (representation.py) from E's codes of the probe's train
        subset, the validation slice where the data have one, and the test split. The model-free
        references are computed here when asked for, before the probes, timed on their own."""
        data, ec = self.data, self.ec
        x_tr, y_tr = subset(data.train, ec.probe_max_train)
        train, valid = (x_tr, y_tr, self._batched(model.encode, x_tr)), None
        if data.valid is not None:
            xv, yv = subset(data.valid, ec.probe_max_train)
            valid = (xv, yv, self._batched(model.encode, xv))
        if ec.references and "references" not in self.notes:
            self._timed(sec, "references", self.references)
        has_pooled = model.pooled_features(self.runtime.batch(x_test[:2])) is not None
        pooled = functools.partial(self._batched, model.pooled_features) if has_pooled else None
        return representation_scores(train, (x_test, data.test.y, z_test), valid, self.label_ns, pooled,
                                     "cosine" if self.images else "euclidean", self.runtime.device,
                                     lambda key, fn: self._timed(sec, key, fn), self.notes)

    def _sample_outputs(self, model, g, n, fn, n_out, threshold=None, shared=False):
        """fn(decoded batch) -> n_out tensors, over n prior draws with generator g (truncated at
        `threshold` if given) in eval-size batches; returns the n_out tensors with all n rows in
        draw order. No more than one batch of images exists at a time. `shared`: every process
        of a torchrun job calls this together and decodes every world-th batch; all draw every
        batch's noise, so g stays in step, and the outputs are gathered (metrics.DrawOrdered)."""
        bs = self.ec.eval_batch_size
        starts = range(0, n, bs)
        split = shared and len(starts) >= self.runtime.world
        rank, world = (self.runtime.rank, self.runtime.world) if split else (0, 1)
        store = metrics.DrawOrdered(n_out).to(self.runtime.device) if world > 1 else _InDrawOrder(n_out)
        for k, i in enumerate(starts):
            z = truncated_latent(model, min(bs, n - i), threshold, g)
            if k % world == rank:
                store.update(torch.arange(i, i + len(z)), *fn(model.decode(z).float()))
        return store.compute()

    def _scores(self, model, g, n, threshold=None, shared=False, prdc=True):
        """The generation metric and its IS analogue on n decoded samples: images, the domain
        classifier's Frechet distance and score; 2-D points, mode coverage. `prdc`: precision,
        recall, density and coverage too, in the same space."""
        if not self.images:
            (points,) = self._sample_outputs(model, g, n, lambda x: (x,), 1, threshold, shared)
            cov = metrics.mode_coverage(points.cpu(), self.data.meta["centres"], self.data.meta["std"])
            out = {k: cov[k] for k in ("modes_nearest", "modes_3sigma", "high_quality", "kl_modes")}
            return {**out, **(score_prdc(points, self.real_points, "points", self.runtime.device) if prdc else {})}
        name, clf = self.data.name, self.domain
        def features_and_logits(x):
            return clf.features(metrics.to_uint8(x)), clf.logits(metrics.to_uint8(x))
        feats, logits = self._sample_outputs(model, g, n, features_and_logits, 2, threshold, shared)
        mu, sigma = metrics.feature_stats(feats)
        return {f"fd_{name}": metrics.frechet_from_stats(self.domain_ref["mu"], self.domain_ref["sigma"], mu, sigma),
                f"cs_{name}": metrics.classifier_score(logits.cpu(), multilabel=clf.multilabel)[0],
                **(score_prdc(feats, self.domain_ref["feats"], name, self.runtime.device) if prdc else {})}

    @torch.no_grad()
    def track(self, model, seed):
        """The generation scores on `track_samples` draws of the fixed noise, for the curve the
        training loop logs every `track_every` steps. Leaves the model in train mode and every RNG
        as it found it, so a tracked run trains exactly as an untracked one."""
        rng = self.runtime.rng_state()
        model.eval()
        try:
            g = eval_noise(seed)
            # Without precision/recall: their real-side neighbour radii would be computed again at
            # every tracked step (seconds each on toy2d's 10,000 points), in the training loop.
            out = self._scores(model, g, self.ec.track_samples, prdc=False)
            return {k: float(v) for k, v in out.items() if v is not None}
        finally:
            model.train()
            self.runtime.set_rng_state(rng)

    def _truncation_sweep(self, model, seed, run_dir):
        """truncation.csv: the generation scores against the truncation threshold, the same noise
        stream at every threshold; Gaussian-prior models only (a uniform prior has no tails)."""
        if model.prior != "normal" or not self.ec.truncation:
            return
        rows = []
        for t in sorted(self.ec.truncation) + [None]:
            g = eval_noise(seed)
            rows.append({"threshold": math.inf if t is None else t,
                         **self._scores(model, g, self.ec.truncation_samples, t, shared=True)})
        if not self.runtime.is_main:
            return
        buf = io.StringIO()
        w = csv.DictWriter(buf, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(run_dir / "truncation.csv", buf.getvalue())

    def _latent_figures(self, model, x_test, z_test, run_dir):
        """interp.png (decoded straight lines between the codes of pairs of test images, the real
        pair at the ends) and neighbours_{euclidean,cosine}.png (a test image, then its nearest
        test images in E's code space); the same images for every model."""
        idx = torch.randperm(len(x_test), generator=torch.Generator().manual_seed(FIGURE_SEED))
        real = lambda i: self.runtime.batch(x_test[i]).cpu()  # noqa: E731
        pairs = min(INTERP_PAIRS, len(idx) // 2)
        a, b = idx[:pairs], idx[pairs:2 * pairs]
        t = torch.linspace(0, 1, INTERP_STEPS).view(1, -1, 1)
        z = ((1 - t) * z_test[a].unsqueeze(1) + t * z_test[b].unsqueeze(1)).flatten(0, 1)
        frames = self._batched(model.decode, z).view(pairs, INTERP_STEPS, *x_test.shape[1:])
        figures.image_rows([torch.cat([real(a[p:p + 1]), frames[p], real(b[p:p + 1])]) for p in range(pairs)],
                           run_dir / "interp.png")
        q = idx[:min(NN_QUERIES, len(idx))]
        for metric in ("euclidean", "cosine"):
            nn_idx = metrics.nearest_neighbours(z_test[q], z_test, NN_K, metric, exclude=q)
            figures.image_rows([real(torch.cat([q[i:i + 1], nn_idx[i]])) for i in range(len(q))],
                               run_dir / f"neighbours_{metric}.png")

    def _generation(self, model, g, x_test, rec):
        """Every process calls this together (the sample metrics are shared); rank 0, which
        alone has x_test's reconstructions `rec`, also scores semantic_recon."""
        clf, n_gen = self.domain, self.ec.gen_samples
        out = self._scores(model, g, n_gen, shared=True)
        if rec is not None:
            out["semantic_recon"] = metrics.label_agreement(clf.predict(x_test), clf.predict(metrics.to_uint8(rec)))
            out[f"recon_fd_{self.data.name}"] = metrics.frechet_distance(clf.features(x_test),
                                                                         clf.features(metrics.to_uint8(rec)))
        bb, dev = self.backbones, self.runtime.device
        if bb.inception is not None:
            n, ref = self.ec.inception_samples, bb.inception_ref
            f, lg = self._sample_outputs(model, g, n, lambda x: bb.inception_features_and_logits(metrics.to_uint8(x)),
                                         2, shared=True)
            tag = count_tag(n)
            out[f"fid_{tag}"] = metrics.frechet_from_stats(ref["mu"], ref["sigma"], *metrics.feature_stats(f))
            out[f"is_{tag}"] = metrics.inception_score(lg, splits=min(10, len(lg)), seed=FIDELITY_SEED)[0]
            out[f"kid_{tag}"] = metrics.kernel_distance(ref["kid_feats"], f.float(), subset_size=KID_SUBSET,
                                                        seed=FIDELITY_SEED)[0]
            out.update(score_prdc(f, ref["feats"], tag, dev))
        if bb.dinov2 is not None:
            n, ref = self.ec.dinov2_samples, bb.dinov2_ref
            (f,) = self._sample_outputs(model, g, n, lambda x: (bb.dinov2_features(metrics.to_uint8(x)),), 1,
                                        shared=True)
            tag = dinov2_tag(n)
            out[f"fd_{tag}"] = metrics.frechet_from_stats(ref["mu"], ref["sigma"], *metrics.feature_stats(f))
            out.update(score_prdc(f, ref["feats"], tag, dev))
        return out
