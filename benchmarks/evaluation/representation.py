"""E's codes scored as a representation (the evaluator's representation columns): the linear probe
(C chosen on a validation slice), the label-efficiency probes (n labelled items per class, the same
label draws for every model), BigBiGAN's probe on E's pooled features, and kNN-20; and which label
counts a benchmark's labels allow, with the notes of those columns.
"""
import torch

import metrics

from ..core.protocol import LABEL_SEED, PROBE_DRAWS, subset


def label_counts(y, wanted):
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


def label_notes(data, ec):
    """(the label counts of the label-efficiency probes this benchmark computes, their {column: note})."""
    _, y_tr = subset(data.train, ec.probe_max_train)
    label_ns, left_out = label_counts(y_tr, ec.probe_labels)
    notes = {"probe_acc_labels": left_out} if left_out else {}
    for n in label_ns:
        notes[f"probe_acc_{n}"] = (
            f"logistic regression on E(x) trained on {n} labelled item(s) per class of the probe's "
            f"{len(y_tr)} train items (E(x) standardised with all of them: scaling needs no labels), mean test "
            f"accuracy over {PROBE_DRAWS} fixed label draws (seed {LABEL_SEED}: the same draws for every model "
            f"and the raw-pixel reference; the sd over draws is probe_acc_{n}_sd in metrics.json); "
            f"C fixed at {metrics.probe.LABEL_C} (with so few labels none can be held out to choose it); "
            f"{len(data.test.y)} test")
    return label_ns, notes


def representation_scores(train, test, valid, label_ns, pooled, knn_metric, device, timed, notes):
    """The representation columns of one run. `train`, `test`, `valid`: (items, labels, E's codes)
    of the probe's train subset, the test split and the validation slice (None without one);
    `pooled(x)`: E's pooled features of items x, None when E has none; `timed(key, fn)`: fn's
    result, its seconds recorded under key. The linear probe's note joins `notes`."""
    (x_tr, y_tr, f_tr), (x_te, y_te, z_te) = train, test
    val = (valid[2], valid[1]) if valid else None
    out = {}
    probe = timed("probe_acc", lambda: metrics.linear_probe(f_tr, y_tr, z_te, y_te, device=device, val=val))
    out["probe_acc"], out["probe_bal_acc"] = probe["accuracy"], probe["balanced_accuracy"]
    notes["probe_acc"] = (f"logistic regression on standardised E(x), C chosen on a validation slice; "
                          f"{len(x_tr)} train, {len(x_te)} test; majority-class baseline "
                          f"{probe['majority_accuracy']:.4f}")
    if label_ns:
        few = timed("probe_labels", lambda: metrics.label_efficiency(
            f_tr, y_tr, z_te, y_te, label_ns, PROBE_DRAWS, LABEL_SEED, device=device))
        for n, r in few.items():
            out[f"probe_acc_{n}"], out[f"probe_acc_{n}_sd"] = r["accuracy"], r["sd"]
    if pooled is not None:
        def pool_probe():  # BigBiGAN's recipe: normalise with train statistics, then CReLU
            p_tr, p_te, *p_val = metrics.bn_crelu(*(pooled(x) for x in (x_tr, x_te, *([valid[0]] if valid else []))))
            return metrics.linear_probe(p_tr, y_tr, p_te, y_te, device=device,
                                        val=(p_val[0], valid[1]) if valid else None)["accuracy"]
        out["probe_pool_acc"] = timed("probe_pool_acc", pool_probe)
    out["knn_acc"] = timed("knn_acc", lambda: metrics.knn_accuracy(
        f_tr, y_tr, z_te, y_te, k=20, device=device, metric=knn_metric))
    return out
