"""The model-free references of a benchmark's protocol: what raw inputs, the majority class, chance,
the mean image and a held-out real sample score on the columns the models are scored on, each
with its test-set interval. Computed once per protocol and cached under a key that names
everything they depend on; the Evaluator (evaluate.py) holds a `References` and writes its numbers
into each run's protocol notes and the folder's references.json.
"""
import hashlib
import json
import warnings

import torch

import metrics
from metrics.cache import CACHE_VARIABLE, write_entry
from metrics.inception import content_hash

from ..core import stats
from ..core.io import default_cache_dir
from ..core.protocol import FIGURE_SEED, LABEL_SEED, LPIPS_COLUMN, PROBE_DRAWS, count_tag, dinov2_tag, subset
from ..core.protocol import to_unit as _to_unit
from ..core.records import read_references
from .real import gen_split, score_prdc

REFERENCES_VERSION = "ref3"  # bump when references() computes anything differently

def references_key(dataset, parts, backbone, settings=()):
    """The references cache key: the dataset, the code version, the content of every tensor the
    numbers are computed from (which names the split, the subset and the sizes), the
    classifier behind the semantic chance level ("points" where there is none), and the
    `settings` the numbers depend on beyond those (the feature spaces, the label counts)."""
    return "-".join(["references", dataset, REFERENCES_VERSION, *(content_hash(t, 12) for t in parts), backbone,
                     *settings])


MAX_STEM = 200  # file names stop at 255 bytes on most filesystems; the key's tail is hashed past this


def cache_file_stem(key):
    """The file name of a cache entry: the key itself while it fits a file name, else its readable
    head and a hash of the whole key (the entry stores the full key, which reading it checks)."""
    if len(key) <= MAX_STEM:
        return key
    return f"{key[:MAX_STEM - 17]}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


class References:
    """The model-free references of one benchmark (references.json), with what they are computed
    from: the data, its eval config (`ec`, a config.Eval) and runtime, the label counts of the
    label-efficiency probes (`label_ns`), the domain classifier (`domain`, None on points) and the
    real reference of the data's own space that generated samples are scored against (`real_feats`:
    the domain classifier's features of the real sample, or the raw points), and the backbones
    (backbones.py: their networks, real reference features and feature functions). The evaluator
    builds it once and asks for the numbers when a run first needs them."""

    def __init__(self, data, ec, runtime, label_ns, domain, real_feats, backbones):
        self.data, self.ec, self.runtime, self.label_ns = data, ec, runtime, label_ns
        self.domain, self.real_feats, self.backbones = domain, real_feats, backbones
        self.images = data.kind == "image"

    def compute(self):
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
        the domain classifier, the Inception, DINOv2 and LPIPS weights where they run and the label
        counts. Where LPIPS runs, its chance level and mean-image floor too. Returns {"notes",
        "values", "key"}."""
        data, dev, bb = self.data, self.runtime.device, self.backbones
        x_tr, y_tr = subset(data.train, self.ec.probe_max_train)
        xv = yv = None
        if data.valid is not None:
            xv, yv = subset(data.valid, self.ec.probe_max_train)
        x_te, y_te = data.test.x, data.test.y
        parts = [x_tr, y_tr, x_te, y_te] + ([xv, yv] if xv is not None else [])
        parts += [t for held, real, _ in self._ceiling_sets() for t in (held, real)]
        settings = [f"labels{'.'.join(map(str, self.label_ns))}x{PROBE_DRAWS}"]
        settings += [net.backbone for net in (bb.inception, bb.dinov2, bb.lpips) if net is not None]
        key = references_key(data.name, parts, self.domain.key if self.images else "points", settings)
        path = default_cache_dir() / "references" / f"{cache_file_stem(key)}.json"
        cached = read_references(path)
        if cached is None and path.exists():  # stacklevel 3: the caller of Evaluator.references
            warnings.warn(f"Ignoring unreadable references cache file {path}; computing it again (the caches live "
                          f"under ${CACHE_VARIABLE}).", stacklevel=3)
        if cached is None or cached["key"] != key:
            cached = self._compute_references(x_tr, y_tr, x_te, y_te, xv, yv, dev)
            cached["key"] = key
            # the raw-pixel probe is the slow part; a cache that can't be written only costs time
            write_entry(path, lambda f: f.write((json.dumps(cached, indent=2, sort_keys=True) + "\n").encode()))
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
        if self.backbones.lpips is not None:  # the same pairs in LPIPS, on the uint8 images the column compares
            mean_u8 = metrics.to_uint8(self.runtime.batch(x_tr).float().mean(0, keepdim=True).cpu())
            per_item[f"chance_{LPIPS_COLUMN}"] = self.backbones.lpips_distance(x_te, x_te[perm])
            per_item[f"mean_image_{LPIPS_COLUMN}"] = self.backbones.lpips_distance(x_te, mean_u8.expand_as(x_te))
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
        floor = f"recon_mse {f('mean_image_recon_mse')}"
        if self.images:
            chance += f", semantic_recon {f('chance_semantic_recon')}"
        if self.backbones.lpips is not None:
            chance += f", {LPIPS_COLUMN} {f(f'chance_{LPIPS_COLUMN}')}"
            floor += f", {LPIPS_COLUMN} {f(f'mean_image_{LPIPS_COLUMN}')}"
        few_text = "".join(f", {k} labelled per class {f(f'raw_probe_acc_{k}')} (sd over the {PROBE_DRAWS} draws "
                           f"{r['sd']:.4g})" for k, r in few.items())
        ceiling, ceiling_note = self._ceiling()
        values.update(ceiling)
        return {"notes": {
            "references": (f"raw {'pixels' if self.images else 'coordinates'} ({x_te[0].numel()} inputs): linear probe "
                           f"{f('raw_probe_acc')}{few_text}, kNN-20 ({metric}) {f('raw_knn_acc')}; majority class "
                           f"{f('majority_acc')}; {n}"),
            "chance": (f"between each test image and a random other test image: {chance}; predicting the train "
                       f"subset's mean image for every test image: {floor}; {n}"),
            "ceiling": ceiling_note},
            "values": values}

    def _ceiling_sets(self):
        """[(held-out real sample, real reference features, column suffix)] for the ceiling of
        precision, recall, density and coverage, one per space the models are scored in: up to as
        many held-out items as the models' generated samples, against the very real reference
        features their scores use."""
        # The held-out sample comes from a split disjoint from the reference: the scored split
        # when samples are scored against train, train when they are scored against the scored split.
        held = self.data.test if gen_split(self.data, self.ec) == "train" else self.data.train
        if not self.images:
            return [(subset(held, self.ec.gen_samples)[0], self.real_feats, "points")]
        bb = self.backbones
        sets = [(subset(held, self.ec.gen_samples)[0], self.real_feats, self.data.name)]
        if bb.inception is not None:
            n = self.ec.inception_samples
            sets.append((subset(held, n)[0], bb.inception_ref["feats"], count_tag(n)))
        if bb.dinov2 is not None:
            n = self.ec.dinov2_samples
            sets.append((subset(held, n)[0], bb.dinov2_ref["feats"], dinov2_tag(n)))
        return sets

    def _ceiling(self):
        """({real_<column>: value}, note): precision, recall, density and coverage of a held-out
        real sample (the test split) against the real train sample the models are scored against:
        what a generator of the data distribution itself would score, which is not 1 (a finite
        sample's neighbour balls miss part of the other's support). One number each, no interval:
        they are sample statistics of one fixed pair of samples."""
        values, parts, split = {}, [], gen_split(self.data, self.ec)
        for held, real, suffix in self._ceiling_sets():
            if not self.images:
                feats = held
            elif suffix == self.data.name:
                feats = self.domain.features(held)
            elif suffix.startswith("dinov2_"):
                feats = self.backbones.dinov2_features(held)
            else:
                feats = self.backbones.inception_features(held)
            scores = score_prdc(feats, real, suffix, self.runtime.device)
            values.update({f"real_{k}": v for k, v in scores.items()})
            held_split = self.data.meta.get("scored_on", "test") if split == "train" else "train"
            parts.append(f"{len(held)} {held_split} vs {len(real)} {split} ({suffix}): "
                         + ", ".join(f"{k} {v:.4g}" for k, v in scores.items()))
        note = ("a real sample disjoint from the reference against the real sample the models are scored against, "
                "the ceiling of precision, recall, density and coverage (a different count of held-out samples than "
                "generated ones shifts the ceiling: a smaller set has wider neighbour balls): " + "; ".join(parts))
        return values, note
