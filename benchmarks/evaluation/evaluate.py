"""Score trained models: generation, reconstruction and representation, plus their figures.

`Evaluator` holds what every run of a benchmark shares and builds it once: the domain
classifier, the Inception network and the real-data reference statistics. Models are used
only through encode / decode / sample_latent / pooled_features.
"""
import csv
import io
import json
import math
import os
import sys
import time
import warnings

import torch

import metrics
from metrics.frechet import FIDELITY_SEED
from metrics.cache import CACHE_VARIABLE, write_entry
from metrics.inception import content_hash

from ..core.io import atomic_write_text, default_cache_dir
from ..reporting import stats
from ..reporting.report import read_references
from . import figures
from .figures import to_unit as _to_unit

REFERENCES_VERSION = "ref3"  # bump when references() computes anything differently
EVAL_NOISE_OFFSET = 10_000  # the fixed noise of seed s comes from generator seed s + offset
FIGURE_SEED = 0  # which test images the interpolation and neighbour figures show: the same for every model
INTERP_PAIRS, INTERP_STEPS = 6, 8
NN_QUERIES, NN_K = 6, 8
# Images per InceptionV3 forward at 299 px: activation memory, not speed, bounds it on a CPU.
INCEPTION_BATCH = {"cuda": 500, "cpu": 64}
KID_SUBSET = 1000  # torch-fidelity's kid_subset_size; clipped to the smaller sample count (noted)
# Label-efficiency probes (probe_acc_<n>): label draws per n, and their seed. The seed is the
# dataset's, not the run's, so every model and the raw-pixel reference get the same draws.
PROBE_DRAWS, LABEL_SEED = 5, 0
PRDC = ("precision", "recall", "density", "coverage")


def subset(split, n, seed=0):
    """The same deterministic subset for every run (seeded by the dataset, not the run)."""
    if len(split.x) <= n:
        return split.x, split.y
    idx = torch.randperm(len(split.x), generator=torch.Generator().manual_seed(seed))[:n]
    return split.x[idx], split.y[idx]


def eval_noise(seed):
    """A fresh generator of seed `seed`'s fixed evaluation noise, the same stream for every model
    of that seed. The scores, the tracked curve, each truncation threshold and the sample grid
    each start one, so what one of them draws never shifts the noise of another."""
    return torch.Generator().manual_seed(seed + EVAL_NOISE_OFFSET)


def _count_tag(n):
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


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


def references_key(dataset, parts, backbone, settings=()):
    """The references cache key: the dataset, the code version, the content of every tensor the
    numbers are computed from (which names the split, the subset and the sizes), the
    classifier behind the semantic chance level ("points" where there is none), and the
    `settings` the numbers depend on beyond those (the feature spaces, the label counts)."""
    return "-".join(["references", dataset, REFERENCES_VERSION, *(content_hash(t, 12) for t in parts), backbone,
                     *settings])


def _label_counts(y, wanted):
    """(the label counts per class of `wanted` that the probe's train labels y allow, a note on
    those left out or None): n is left out when a class of y has fewer than n items, and every
    n when y is multi-label (CelebA's attributes have no classes to draw n of)."""
    if y.dim() != 1:
        return [], (f"not computed: the labels are {y.shape[1]} binary attributes, not classes to draw n labelled "
                    "items of") if wanted else None
    smallest = int(torch.bincount(y).masked_fill(torch.bincount(y) == 0, len(y)).min())
    kept = [n for n in wanted if n <= smallest]
    left = [n for n in wanted if n > smallest]
    return kept, (f"n = {', '.join(map(str, left))} left out: the probe's train subset of {len(y)} holds only "
                  f"{smallest} items of its smallest class") if left else None


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
    def __init__(self, data, cfg, runtime, fid_weights=None):
        self.data, self.ec, self.runtime = data, cfg["eval"], runtime
        self.images = data.kind == "image"
        self.notes = {}  # column -> what it was computed on, for the table's protocol header
        self.domain = self.domain_ref = self.inception = self.inception_ref = self.skip_reason = None
        self._label_notes()
        if not self.images:
            n = self.ec["gen_samples"]
            self.notes["modes_nearest"] = (f"ALI's rule on {n} samples: each sample to its nearest centre, a mode "
                                           "dropped only when no sample lands on it")
            self.notes["modes_3sigma"] = (f"VEEGAN/PacGAN's rule on the first {min(n, 2500)} of them: a mode counts "
                                          "when it is the nearest centre of at least one sample within 3 std; "
                                          "high_quality and kl_modes on the same samples")
            self.notes["modes_chance"] = _uniform_modes(data, n)
            self.real_points, _ = subset(data.train, n)
            self._prdc_notes("points", "the raw 2-D points", len(self.real_points))
            return
        name, n_gen = data.name, self.ec["gen_samples"]
        self.domain = metrics.get_domain_classifier(data, runtime.device, default_cache_dir() / "domain")
        real, _ = subset(data.train, n_gen)
        self.domain_ref = metrics.reference_stats(real, data, "train", self.domain.key, self.domain.features,
                                                  cache_dir=default_cache_dir() / "stats")
        backbone = (f"domain CNN trained on {name} train labels (test accuracy {self.domain.test_accuracy:.4f}, "
                    f"key {self.domain.key})")
        self.notes[f"fd_{name}"] = f"Frechet distance in {backbone} features; {len(real)} real train vs {n_gen} generated; not FID"
        self.notes[f"cs_{name}"] = (f"Inception-Score analogue with the same classifier's posteriors, {n_gen} "
                                    f"generated, 10 splits after a shuffle with seed {FIDELITY_SEED}")
        self.notes["semantic_recon"] = "how often the domain classifier gives x and G(E(x)) the same label (test split)"
        self.notes[f"recon_fd_{name}"] = (f"Frechet distance in the same domain CNN features between the "
                                          f"{len(data.test.x)} test images x and their reconstructions G(E(x)): how "
                                          "real the reconstructions look as a set, 0 when they match the test set's "
                                          "feature statistics; blur raises it where it can lower recon_mse")
        self._prdc_notes(name, f"the domain CNN's features (key {self.domain.key})", len(real))
        self._setup_inception(fid_weights)

    def _label_notes(self):
        """The label counts of the label-efficiency probes this benchmark computes, and their notes."""
        _, y_tr = subset(self.data.train, self.ec["probe_max_train"])
        self.label_ns, left_out = _label_counts(y_tr, self.ec["probe_labels"])
        if left_out:
            self.notes["probe_acc_labels"] = left_out
        for n in self.label_ns:
            self.notes[f"probe_acc_{n}"] = (
                f"logistic regression on E(x) trained on {n} labelled item(s) per class of the probe's "
                f"{len(y_tr)} train items (E(x) standardised with all of them: scaling needs no labels), mean test "
                f"accuracy over {PROBE_DRAWS} fixed label draws (seed {LABEL_SEED}: the same draws for every model "
                f"and the raw-pixel reference; the sd over draws is probe_acc_{n}_sd in metrics.json); "
                f"C fixed at {metrics.probe.LABEL_C} (with so few labels none can be held out to choose it); "
                f"{len(self.data.test.y)} test")

    def _prdc_notes(self, suffix, space, n_real, n_gen=None, swept=True):
        """The protocol notes of precision_<suffix>, recall_, density_ and coverage_ (see _prdc);
        `swept`: the truncation sweep scores them too."""
        n_gen = n_gen or self.ec["gen_samples"]
        counts = (f"{n_gen} generated vs {n_real} real train samples in {space}"
                  + (f"; truncation.csv scores its {self.ec['truncation_samples']} per threshold against the same "
                     "real ones, so read its values against each other, not against this column" if swept else ""))
        k_pr, k_dc = metrics.prdc.PR_K, metrics.prdc.DC_K
        self.notes[f"precision_{suffix}"] = (f"improved precision (Kynkäänniemi et al. 2019, torch-fidelity "
                                             f"prc_features_to_metric, k = {k_pr}): the share of generated samples "
                                             f"inside some real sample's {k_pr}-NN ball; {counts}")
        self.notes[f"recall_{suffix}"] = (f"improved recall (k = {k_pr}): the share of real samples inside some "
                                          f"generated sample's {k_pr}-NN ball; {counts}")
        self.notes[f"density_{suffix}"] = (f"density (Naeem et al. 2020, k = {k_dc}): the real {k_dc}-NN balls "
                                           f"holding a generated sample, / {k_dc}, averaged over generated samples; "
                                           f"about 1 when they are distributed like the real data, above 1 when they "
                                           f"crowd its dense regions; {counts}")
        self.notes[f"coverage_{suffix}"] = (f"coverage (Naeem et al. 2020, k = {k_dc}): the share of real samples "
                                            f"whose {k_dc}-NN ball holds a generated sample; {counts}")

    def _prdc(self, fake, real, suffix):
        """precision_<suffix>, recall_, density_ and coverage_ of generated features against the
        real reference's, on the run's device (the distances are the cost)."""
        scores = metrics.prdc_scores(torch.as_tensor(fake).to(self.runtime.device), real)
        return {f"{m}_{suffix}": scores[m] for m in PRDC}

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
                real, _ = subset(self.data.train, n)
                feats = lambda x: metrics.inception_features(  # noqa: E731
                    [x], net, self.runtime.device, with_logits=False, dtype=torch.float32,
                    batch_size=INCEPTION_BATCH[self.runtime.device.type])[0]
                self.inception_ref = metrics.reference_stats(real, self.data, "train", net.backbone, feats,
                                                             cache_dir=default_cache_dir() / "stats")
                tag = _count_tag(n)
                for col in ("fid", "is", "kid"):
                    self.notes[f"{col}_{tag}"] = (f"{col.upper()} with the TF-ported InceptionV3 (torch-fidelity "
                                                  f"inception-v3-compat, weights sha256 {net.weights_sha256[:12]}), "
                                                  f"{n} generated vs {len(real)} real train images, uint8 by rounding")
                self.notes[f"is_{tag}"] += f"; {min(10, n)} splits after a shuffle with seed {FIDELITY_SEED}"
                self._prdc_notes(tag, "the same InceptionV3's pool features", len(real), n_gen=n, swept=False)
                m = min(KID_SUBSET, n, len(self.inception_ref["kid_feats"]))
                self.notes[f"kid_{tag}"] += (f"; 100 subsets of {m}" + (f" (torch-fidelity's {KID_SUBSET} clipped to the "
                                             "sample count: every subset holds the same generated images, so the "
                                             "spread over subsets understates the sampling error)" if m < KID_SUBSET else ""))
        if self.skip_reason and self.runtime.is_main:
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

    @torch.inference_mode()
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
        g = eval_noise(seed)
        x_test = data.test.x
        if not self.runtime.is_main:
            # The other torchrun processes only share the sample metrics' decoding: they make the
            # draws of rank 0's latent cycle (so g stays in step), then join each shared call in turn.
            model.sample_latent(len(x_test), generator=g)
            if self.images:
                self._generation(model, g, None, None)
            else:
                self._scores(model, g, ec["gen_samples"], shared=True)
            self._truncation_sweep(model, seed, run_dir)
            return {}

        z_test = self._timed(sec, "encode", lambda: self._batched(model.encode, x_test))
        rec = self._timed(sec, "recon_mse", lambda: self._batched(lambda z: model.decode(z.to(dev)), z_test))
        real_unit = _to_unit(self.runtime.batch(x_test).cpu())
        out["recon_mse"] = metrics.reconstruction_mse(real_unit, _to_unit(rec))

        def cycle():
            z = model.sample_latent(len(x_test), generator=g)
            zr = self._batched(lambda zz: model.encode(model.decode(zz.to(dev))), z.cpu())
            return metrics.latent_cycle_mse(z.cpu(), zr)
        out["latent_cycle_mse"] = self._timed(sec, "latent_cycle_mse", cycle)

        x_tr, y_tr = subset(data.train, ec["probe_max_train"])
        f_tr = self._batched(model.encode, x_tr)
        val = None
        if data.valid is not None:
            xv, yv = subset(data.valid, ec["probe_max_train"])
            val = (self._batched(model.encode, xv), yv)
        if ec["references"] and "references" not in self.notes:
            self._timed(sec, "references", self.references)
        probe = self._timed(sec, "probe_acc", lambda: metrics.linear_probe(f_tr, y_tr, z_test, data.test.y, device=dev, val=val))
        out["probe_acc"], out["probe_bal_acc"] = probe["accuracy"], probe["balanced_accuracy"]
        self.notes["probe_acc"] = (f"logistic regression on standardised E(x), C chosen on a validation slice; "
                                   f"{len(x_tr)} train, {len(x_test)} test; majority-class baseline "
                                   f"{probe['majority_accuracy']:.4f}")
        if self.label_ns:
            few = self._timed(sec, "probe_labels", lambda: metrics.label_efficiency(
                f_tr, y_tr, z_test, data.test.y, self.label_ns, PROBE_DRAWS, LABEL_SEED, device=dev))
            for n, r in few.items():
                out[f"probe_acc_{n}"], out[f"probe_acc_{n}_sd"] = r["accuracy"], r["sd"]
        if model.pooled_features(self.runtime.batch(x_test[:2])) is not None:
            def pool_probe():  # BigBiGAN's recipe: normalise with train statistics, then CReLU
                p_tr, p_te, *p_val = metrics.bn_crelu(*(self._batched(model.pooled_features, x)
                                                        for x in (x_tr, x_test, *([xv] if val else []))))
                return metrics.linear_probe(p_tr, y_tr, p_te, data.test.y, device=dev,
                                            val=(p_val[0], yv) if val else None)["accuracy"]
            out["probe_pool_acc"] = self._timed(sec, "probe_pool_acc", pool_probe)
        out["knn_acc"] = self._timed(sec, "knn_acc", lambda: metrics.knn_accuracy(f_tr, y_tr, z_test, data.test.y, k=20, device=dev, metric="cosine" if self.images else "euclidean"))

        if self.images:
            self._timed(sec, "generation", lambda: out.update(self._generation(model, g, x_test, rec)))
            self._timed(sec, "figures", lambda: self._latent_figures(model, x_test, z_test, run_dir))
        else:
            out.update(self._timed(sec, "modes", lambda: self._scores(model, g, ec["gen_samples"], shared=True)))
        self._timed(sec, "truncation", lambda: self._truncation_sweep(model, seed, run_dir))

        grid = model.decode(model.sample_latent(ec["grid_size"], generator=eval_noise(seed))).float().cpu()
        n_rec = min(32, len(x_test))
        figures.samples_and_recon(grid, self.runtime.batch(x_test[:n_rec]).cpu(), rec[:n_rec], data, run_dir)
        out["metric_seconds"] = sec
        out["protocol"] = dict(self.notes)
        return out

    def references(self):
        """What the model-free inputs score under this benchmark's protocol, for the protocol block
        and the folder's references.json: the probe and kNN on raw pixels (the models' train
        subset, validation and test split), the majority class, and the reconstruction columns'
        chance levels (each test image against a random other one, a fixed permutation) and floor
        (the train subset's mean image for every test image). Each with a 95 % percentile-bootstrap
        interval over test items: they are computed once, on a fixed test set, so the test set's
        own sampling error is the uncertainty they carry. The label-efficiency probes on raw pixels
        (raw_probe_acc_<n>) with the models' label draws, and the ceiling of precision, recall,
        density and coverage (real_<column>, see _ceiling). Cached under a key naming everything
        they depend on: dataset, code version, the exact tensors (so the subset, split and sizes),
        the domain classifier, the Inception weights where they run and the label counts."""
        data, dev = self.data, self.runtime.device
        x_tr, y_tr = subset(data.train, self.ec["probe_max_train"])
        xv = yv = None
        if data.valid is not None:
            xv, yv = subset(data.valid, self.ec["probe_max_train"])
        x_te, y_te = data.test.x, data.test.y
        parts = [x_tr, y_tr, x_te, y_te] + ([xv, yv] if xv is not None else [])
        parts += [t for held, real, _ in self._ceiling_sets() for t in (held, real)]
        settings = [f"labels{'.'.join(map(str, self.label_ns))}x{PROBE_DRAWS}"]
        settings += [self.inception.backbone] if self.inception is not None else []
        key = references_key(data.name, parts, self.domain.key if self.images else "points", settings)
        path = default_cache_dir() / "references" / f"{key}.json"
        cached = read_references(path)
        if cached is None and path.exists():
            warnings.warn(f"Ignoring unreadable references cache file {path}; computing it again (the caches live "
                          f"under ${CACHE_VARIABLE}).", stacklevel=2)
        if cached is None or cached["key"] != key:
            cached = self._compute_references(x_tr, y_tr, x_te, y_te, xv, yv, dev)
            cached["key"] = key
            # the raw-pixel probe is the slow part; a cache that can't be written only costs time
            write_entry(path, lambda f: f.write((json.dumps(cached, indent=2, sort_keys=True) + "\n").encode()))
        self.notes.update(cached["notes"])
        return cached

    def _compute_references(self, x_tr, y_tr, x_te, y_te, xv, yv, dev):
        raw = lambda x: self.runtime.batch(x).flatten(1).cpu()  # noqa: E731 - the models' input scaling
        metric = "cosine" if self.images else "euclidean"
        probe = metrics.linear_probe(raw(x_tr), y_tr, raw(x_te), y_te, device=dev,
                                     val=(raw(xv), yv) if xv is not None else None)
        knn = metrics.knn_accuracy(raw(x_tr), y_tr, raw(x_te), y_te, k=20, device=dev, metric=metric, per_item=True)
        unit = _to_unit(self.runtime.batch(x_te).cpu()).double()
        perm = torch.randperm(len(x_te), generator=torch.Generator().manual_seed(FIGURE_SEED))
        mean_image = _to_unit(self.runtime.batch(x_tr).cpu()).double().mean(0, keepdim=True)
        per_item = {"raw_probe_acc": probe["correct"], "raw_knn_acc": knn, "majority_acc": probe["majority_correct"],
                    "chance_recon_mse": (unit - unit[perm]).pow(2).flatten(1).mean(1),
                    "mean_image_recon_mse": (unit - mean_image).pow(2).flatten(1).mean(1)}
        if self.images:
            labels = self.domain.predict(x_te)
            per_item["chance_semantic_recon"] = (labels == labels[perm]).double()
            if per_item["chance_semantic_recon"].dim() == 2:  # multi-label: the share of attributes that agree
                per_item["chance_semantic_recon"] = per_item["chance_semantic_recon"].mean(1)
        few = metrics.label_efficiency(raw(x_tr), y_tr, raw(x_te), y_te, self.label_ns, PROBE_DRAWS, LABEL_SEED,
                                       device=dev) if self.label_ns else {}
        for n, r in few.items():  # per test item: the share of the draws that got it right
            per_item[f"raw_probe_acc_{n}"] = r["correct"]
        values = {k: list(stats.bootstrap_interval(torch.as_tensor(v).double().numpy())) for k, v in per_item.items()}
        f = lambda k: f"{values[k][0]:.4g} [{values[k][1]:.4g}, {values[k][2]:.4g}]"  # noqa: E731
        n = f"95 % bootstrap intervals over the {len(x_te)} test items"
        chance = f"recon_mse {f('chance_recon_mse')}"
        if self.images:
            chance += f", semantic_recon {f('chance_semantic_recon')}"
        few_text = "".join(f", {k} labelled per class {f(f'raw_probe_acc_{k}')} (sd over the {PROBE_DRAWS} draws "
                           f"{r['sd']:.4g})" for k, r in few.items())
        ceiling, ceiling_note = self._ceiling()
        values.update(ceiling)
        return {"notes": {
            "references": (f"raw {'pixels' if self.images else 'coordinates'} ({x_te[0].numel()} inputs): linear probe "
                           f"{f('raw_probe_acc')}{few_text}, kNN-20 ({metric}) {f('raw_knn_acc')}; majority class "
                           f"{f('majority_acc')}; {n}"),
            "chance": (f"between each test image and a random other test image: {chance}; predicting the train "
                       f"subset's mean image for every test image: recon_mse {f('mean_image_recon_mse')}; {n}"),
            "ceiling": ceiling_note},
            "values": values}

    def _ceiling_sets(self):
        """[(held-out real sample, real reference features, column suffix)] for the ceiling of
        precision, recall, density and coverage, one per space the models are scored in: up to as
        many test-split items as the models' generated samples, against the very real train
        features their scores use."""
        test = self.data.test
        if not self.images:
            return [(subset(test, self.ec["gen_samples"])[0], self.real_points, "points")]
        sets = [(subset(test, self.ec["gen_samples"])[0], self.domain_ref["feats"], self.data.name)]
        if self.inception is not None:
            n = self.ec["inception_samples"]
            sets.append((subset(test, n)[0], self.inception_ref["feats"], _count_tag(n)))
        return sets

    def _ceiling(self):
        """({real_<column>: value}, note): precision, recall, density and coverage of a held-out
        real sample (the test split) against the real train sample the models are scored against:
        what a generator of the data distribution itself would score, which is not 1 (a finite
        sample's neighbour balls miss part of the other's support). One number each, no interval:
        they are sample statistics of one fixed pair of samples."""
        values, parts = {}, []
        for held, real, suffix in self._ceiling_sets():
            if not self.images:
                feats = held
            elif suffix == self.data.name:
                feats = self.domain.features(held)
            else:
                feats = metrics.inception_features([held], self.inception, self.runtime.device, with_logits=False,
                                                   dtype=torch.float32,
                                                   batch_size=INCEPTION_BATCH[self.runtime.device.type])[0]
            scores = self._prdc(feats, real, suffix)
            values.update({f"real_{k}": v for k, v in scores.items()})
            parts.append(f"{len(held)} test vs {len(real)} train ({suffix}): "
                         + ", ".join(f"{k} {v:.4g}" for k, v in scores.items()))
        note = ("a held-out real sample against the real train sample the models are scored against, the ceiling "
                "of precision, recall, density and coverage (a different count of held-out samples than generated "
                "ones shifts the ceiling: a smaller set has wider neighbour balls): " + "; ".join(parts))
        return values, note

    def _sample_outputs(self, model, g, n, fn, n_out, threshold=None, shared=False):
        """fn(decoded batch) -> n_out tensors, over n prior draws with generator g (truncated at
        `threshold` if given) in eval-size batches; returns the n_out tensors with all n rows in
        draw order. No more than one batch of images exists at a time. `shared`: every process
        of a torchrun job calls this together and decodes every world-th batch; all draw every
        batch's noise, so g stays in step, and the outputs are gathered (metrics.DrawOrdered)."""
        bs = self.ec["eval_batch_size"]
        starts = range(0, n, bs)
        rank, world = (self.runtime.rank, self.runtime.world) if shared and len(starts) >= self.runtime.world else (0, 1)
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
            return {**out, **(self._prdc(points, self.real_points, "points") if prdc else {})}
        name, clf = self.data.name, self.domain
        feats, logits = self._sample_outputs(model, g, n, lambda x: (clf.features(metrics.to_uint8(x)),
                                                                     clf.logits(metrics.to_uint8(x))), 2, threshold, shared)
        mu, sigma = metrics.feature_stats(feats)
        return {f"fd_{name}": metrics.frechet_from_stats(self.domain_ref["mu"], self.domain_ref["sigma"], mu, sigma),
                f"cs_{name}": metrics.classifier_score(logits.cpu(), multilabel=clf.multilabel)[0],
                **(self._prdc(feats, self.domain_ref["feats"], name) if prdc else {})}

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
            out = self._scores(model, g, self.ec["track_samples"], prdc=False)
            return {k: float(v) for k, v in out.items() if v is not None}
        finally:
            model.train()
            self.runtime.set_rng_state(rng)

    def _truncation_sweep(self, model, seed, run_dir):
        """truncation.csv: the generation scores against the truncation threshold, the same noise
        stream at every threshold; Gaussian-prior models only (a uniform prior has no tails)."""
        if model.prior != "normal" or not self.ec["truncation"]:
            return
        rows = []
        for t in sorted(self.ec["truncation"]) + [None]:
            g = eval_noise(seed)
            rows.append({"threshold": math.inf if t is None else t,
                         **self._scores(model, g, self.ec["truncation_samples"], t, shared=True)})
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
        clf, n_gen = self.domain, self.ec["gen_samples"]
        out = self._scores(model, g, n_gen, shared=True)
        if rec is not None:
            out["semantic_recon"] = metrics.label_agreement(clf.predict(x_test), clf.predict(metrics.to_uint8(rec)))
            out[f"recon_fd_{self.data.name}"] = metrics.frechet_distance(clf.features(x_test),
                                                                         clf.features(metrics.to_uint8(rec)))
        if self.inception is not None:
            n, ref, dev = self.ec["inception_samples"], self.inception_ref, self.runtime.device
            f, lg = self._sample_outputs(model, g, n, lambda x: metrics.inception_features(
                [metrics.to_uint8(x)], self.inception, dev, batch_size=INCEPTION_BATCH[dev.type]), 2, shared=True)
            tag = _count_tag(n)
            out[f"fid_{tag}"] = metrics.frechet_from_stats(ref["mu"], ref["sigma"], *metrics.feature_stats(f))
            out[f"is_{tag}"] = metrics.inception_score(lg, splits=min(10, len(lg)), seed=FIDELITY_SEED)[0]
            out[f"kid_{tag}"] = metrics.kernel_distance(ref["kid_feats"], f.float(), subset_size=KID_SUBSET,
                                                        seed=FIDELITY_SEED)[0]
            out.update(self._prdc(f, ref["feats"], tag))
        return out
