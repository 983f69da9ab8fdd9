"""Linear probe: how linearly decodable the labels are from a representation.

Protocol (the linear-evaluation convention of the self-supervised literature): features
standardised with a scaler fit on train; L2-regularised logistic regression; C chosen on a
validation slice held out of train (never on test); refit on all of train with that C; scored
once on test. Two back ends minimise the same objective,
    sum_i logloss_i + 1/(2C) ||W||^2      (intercept unpenalised),
multinomial softmax for a multi-class y (N,), one sigmoid per task for a multi-label y (N, K):
- "sklearn": LogisticRegression(lbfgs) per task;
- "torch": full-batch L-BFGS, float64, all K binary tasks fit at once as one (d, K) weight
  matrix.
default_backend picks between them.
"""
import warnings

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

DEFAULT_CS = tuple(float(c) for c in np.logspace(-4, 2, 7))  # 1e-4 .. 1e2


def _np(t):
    return t.detach().cpu().numpy() if torch.is_tensor(t) else np.asarray(t)


def _standardise(train, *others):
    """z-score with train's mean and population std (StandardScaler); constant columns -> scale 1."""
    mean, std = train.mean(0), train.std(0)
    std = np.where(std > 0, std, 1.0)
    return [(a - mean) / std for a in (train, *others)]


def bn_crelu(train, *others):
    """BigBiGAN's probe features: each set normalised with train's per-feature statistics (the
    BN), then CReLU, [max(h, 0), max(-h, 0)]. Normalising first matters: on post-ReLU features
    the raw negative half is all zeros, so CReLU before normalising adds nothing."""
    train, *others = (torch.as_tensor(_np(a), dtype=torch.float64) for a in (train, *others))
    mean, std = train.mean(0), train.std(0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return [torch.cat([h.clamp(min=0), (-h).clamp(min=0)], 1) for h in ((a - mean) / std for a in (train, *others))]


def _split_val(y, val_fraction, seed):
    """Indices (fit, val). Stratified for a multi-class y when every class has >= 2 members and
    the slice can hold one of each; otherwise (multi-label, rare classes) a seeded random split."""
    idx = np.arange(len(y))
    n_val = max(1, int(round(val_fraction * len(y))))
    stratify = None
    if y.ndim == 1:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2 and len(counts) <= min(n_val, len(y) - n_val):
            stratify = y
    return train_test_split(idx, test_size=n_val, random_state=seed, stratify=stratify)


# --- back ends: fit on (x, y) with one C, return predictions for each array in `evals` ---------

def _fit_sklearn(x, y, C, evals, max_iter):
    tasks = [y] if y.ndim == 1 else list(y.T)
    preds = [[] for _ in evals]
    for t in tasks:
        classes = np.unique(t)
        if len(classes) < 2:  # a constant label: the only prediction there is
            for p, e in zip(preds, evals):
                p.append(np.full(len(e), classes[0]))
            continue
        clf = LogisticRegression(C=C, max_iter=max_iter).fit(x, t)
        for p, e in zip(preds, evals):
            p.append(clf.predict(e))
    return [p[0] if y.ndim == 1 else np.stack(p, 1) for p in preds]


def _lbfgs(loss_fn, params, max_iter):
    opt = torch.optim.LBFGS(params, lr=1, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-6, tolerance_change=1e-12, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    opt.step(closure)


# The evaluation runs under inference_mode, where L-BFGS gets no gradients: the fit leaves it (its
# inputs arrive as NumPy arrays, so the tensors it makes are ordinary ones).
@torch.inference_mode(False)
@torch.enable_grad()
def _fit_torch(x, y, C, evals, max_iter, device, init=None):
    """Same objective as sklearn, divided by N (same minimiser, better-scaled for L-BFGS).
    Constant tasks (one class in train) are left out of the fit, as on the sklearn path: their
    optimum is at an infinite bias, which would only burn iterations; they predict the constant."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    xt = torch.as_tensor(x, dtype=torch.float64, device=dev)
    n, d = xt.shape
    if y.ndim == 1:
        classes, yi = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            return [np.full(len(e), classes[0]) for e in evals], None
        k, target = len(classes), torch.as_tensor(yi, device=dev)
        data_loss = lambda logits: torch.nn.functional.cross_entropy(logits, target, reduction="sum")
    else:
        fitted = y.min(0) != y.max(0)
        k = int(fitted.sum())
        target = torch.as_tensor(y[:, fitted], dtype=torch.float64, device=dev)
        data_loss = lambda logits: torch.nn.functional.binary_cross_entropy_with_logits(
            logits, target, reduction="sum")
    if init is not None:  # warm start from the previous C of the path (same shapes)
        w, b = (t.detach().clone().requires_grad_(True) for t in init)
    else:
        w = torch.zeros(d, k, dtype=torch.float64, device=dev, requires_grad=True)
        b = torch.zeros(k, dtype=torch.float64, device=dev, requires_grad=True)
    if k:
        _lbfgs(lambda: (data_loss(xt @ w + b) + (w * w).sum() / (2 * C)) / n, [w, b], max_iter)
    preds = []
    with torch.no_grad():
        for e in evals:
            logits = torch.as_tensor(e, dtype=torch.float64, device=dev) @ w + b
            if y.ndim == 1:
                preds.append(classes[logits.argmax(1).cpu().numpy()])
            else:
                p = np.repeat(y[:1], len(e), 0)  # constant tasks keep their one value
                p[:, fitted] = (logits > 0).long().cpu().numpy()
                preds.append(p)
    return preds, (w, b)


def default_backend(device, y):
    """The back end a probe takes when none is asked for: torch on CUDA for multi-label y (N, K),
    scikit-learn otherwise.

    The torch path earns its place where scikit-learn would fit K models one after another: on an
    H200, CelebA's 40 attributes on 1,800 x 128-d features took 1.8 s against scikit-learn's
    5.1 s (results/perf/nvidia-h200-baselines.md). For one multi-class task it loses badly: on
    the same GPU a digits run's three probes took 17-94 s on the torch path
    (results/perf/h200-digits-quick), against 0.4-7 s with scikit-learn on a 2-core CPU
    (results/digits-quick), its L-BFGS steps being launch- and Python-bound at these sizes. The
    choice depends only on the label shape and device, so each benchmark's probe is the same
    solver on every machine of a kind."""
    cuda = device is not None and torch.device(device).type == "cuda"
    return "torch" if cuda and np.ndim(y) == 2 else "sklearn"


# --- scoring ---------------------------------------------------------------------------------

def _accuracy(y, p):
    return float(np.mean(y == p)) if y.ndim == 1 else float(np.mean(np.mean(y == p, 0)))


def _balanced(y, p):
    """Mean recall over the classes present in y; per task for a 2-D y, then averaged."""
    if y.ndim == 2:
        return float(np.mean([_balanced(y[:, j], p[:, j]) for j in range(y.shape[1])]))
    return float(np.mean([np.mean(p[y == c] == c) for c in np.unique(y)]))


def _per_item(hits):
    """Per test item: 1/0 for a class label, the share of attributes right for a multi-label one;
    `accuracy` is their mean, and a bootstrap over test items resamples them."""
    return hits.astype(np.float64) if hits.ndim == 1 else hits.mean(1)


def _mode(y_train):
    """The majority label of train (per attribute for a multi-label y); ties: the smallest."""
    if y_train.ndim == 2:
        return np.array([_mode(y_train[:, j]) for j in range(y_train.shape[1])])
    values, counts = np.unique(y_train, return_counts=True)
    return values[counts.argmax()]


def _majority(y_train, y_test):
    return float(np.mean(y_test == _mode(y_train)))  # per attribute, then averaged: the same mean


def linear_probe(train_x, train_y, test_x, test_y, *, val_fraction=0.1, Cs=DEFAULT_CS, seed=0,
                 device=None, backend=None, C=None, val=None, max_iter=1000):
    """Logistic-regression probe. Returns {"accuracy", "balanced_accuracy", "majority_accuracy",
    "C", "val_accuracy" ({C: accuracy on the validation slice}), "backend", "correct" and
    "majority_correct" (per test item, the probe's and the majority label's, see _per_item)}.

    y of shape (N,): one multi-class task. y of shape (N, K) in {0, 1}: K binary tasks; the metrics
    are means over tasks and ONE C is shared by all tasks, chosen by mean validation accuracy
    (one path of fits instead of K). C selection: the validation slice is `val_fraction` of train
    (stratified where possible, seeded by `seed`), or `val=(x, y)` (e.g. CelebA's official valid
    split); ties go to the smallest C (strongest regularisation). `C=` fixes C and skips selection.
    backend: "sklearn" | "torch" | None (default_backend)."""
    if backend is None:
        backend = default_backend(device, train_y)
    if backend not in ("sklearn", "torch"):
        raise ValueError(f"backend must be 'sklearn' or 'torch', got {backend!r}")
    xtr, xte = _np(train_x).astype(np.float64), _np(test_x).astype(np.float64)
    ytr, yte = _np(train_y).astype(np.int64), _np(test_y).astype(np.int64)
    if ytr.ndim not in (1, 2) or ytr.shape[:1] != xtr.shape[:1] or yte.shape[:1] != xte.shape[:1]:
        raise ValueError(f"shape mismatch: x {xtr.shape} / y {ytr.shape}, x {xte.shape} / y {yte.shape}")
    Cs = sorted(float(c) for c in ((C,) if C is not None else Cs))

    def fit(x, y, c, evals, init=None):
        if backend == "sklearn":
            return _fit_sklearn(x, y, c, evals, max_iter), None
        return _fit_torch(x, y, c, evals, max_iter, device, init)

    val_acc = {}
    if len(Cs) > 1:
        if val is not None:
            xf, yf = xtr, ytr
            xv, yv = _np(val[0]).astype(np.float64), _np(val[1]).astype(np.int64)
        else:
            fi, vi = _split_val(ytr, val_fraction, seed)
            xf, yf, xv, yv = xtr[fi], ytr[fi], xtr[vi], ytr[vi]
        # The scaler is fit on the whole train split; the slice is part of it, so nothing leaks
        # from test, and the final model sees the very same standardisation.
        mean_std = _standardise(xtr, xf, xv)
        state = None
        for c in Cs:  # ascending: each fit warm-starts the next on the torch path
            (pv,), state = fit(mean_std[1], yf, c, [mean_std[2]], state)
            val_acc[c] = _accuracy(yv, pv)
        best = max(val_acc.values())
        chosen = min(c for c in Cs if val_acc[c] == best)
    else:
        chosen = Cs[0]
    ftr, fte = _standardise(xtr, xte)
    (pred,), _ = fit(ftr, ytr, chosen, [fte])
    return {"accuracy": _accuracy(yte, pred), "balanced_accuracy": _balanced(yte, pred),
            "majority_accuracy": _majority(ytr, yte), "C": chosen, "val_accuracy": val_acc,
            "backend": backend, "correct": _per_item(yte == pred), "majority_correct": _per_item(yte == _mode(ytr))}


# --- label efficiency ------------------------------------------------------------------------

# The probe's C with a handful of labels. Choosing C needs held-out labels: with one label per
# class there are none to hold out (cross-validation would leave a class out of every fit), and
# the test split must not choose it. So C is fixed in advance, at scikit-learn's default, the
# same for every n, model and reference; its penalty weighs more against the data term the fewer
# labels there are, which is the direction a small labelled set wants.
LABEL_C = 1.0


def label_draws(train_y, n, draws, seed=0):
    """[indices of the labelled items of draw d for d in range(draws)]: n items of every class of
    train_y, drawn without replacement. Draw d permutes each class's items with
    np.random.default_rng([seed, d]) and takes the first n, so it depends only on the labels,
    the seed and d: every representation scored on the same train items gets the same draws, and
    the draws of a smaller n are nested in those of a larger one."""
    y = _np(train_y)
    if y.ndim != 1:
        raise ValueError(f"label draws need one class label per item, got labels of shape {y.shape}")
    classes, counts = np.unique(y, return_counts=True)
    if n < 1 or n > counts.min():
        raise ValueError(f"n = {n} labels per class needs 1 <= n <= {counts.min()}, the smallest class count")
    out = []
    for d in range(draws):
        rng = np.random.default_rng([seed, d])
        out.append(np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:n] for c in classes])))
    return out


def label_efficiency(train_x, train_y, test_x, test_y, ns, draws=5, seed=0, *, C=LABEL_C, device=None, backend=None,
                     max_iter=1000):
    """The linear probe trained on n labelled items per class, for each n in `ns`, over `draws`
    fixed label draws (label_draws) from (train_x, train_y), scored on the whole test set.

    The features are standardised with the statistics of all of train_x, labelled or not:
    scaling needs no labels, and a mean and std from one item per class would be noise. The
    objective and back ends are linear_probe's, with the fixed C (LABEL_C). Returns
    {n: {"accuracy": mean over draws, "sd": their standard deviation (ddof 1; 0 for one draw),
    "accuracies": per draw, "correct": per test item, the share of draws that got it right}}."""
    if backend is None:
        backend = default_backend(device, train_y)
    xtr, xte = _standardise(_np(train_x).astype(np.float64), _np(test_x).astype(np.float64))
    ytr, yte = _np(train_y).astype(np.int64), _np(test_y).astype(np.int64)
    if yte.ndim != 1 or len(xtr) != len(ytr) or len(xte) != len(yte):
        raise ValueError(f"shape mismatch: x {xtr.shape} / y {ytr.shape}, x {xte.shape} / y {yte.shape}")
    out = {}
    for n in ns:
        hits = []
        for idx in label_draws(ytr, n, draws, seed):
            if backend == "sklearn":
                with warnings.catch_warnings():  # one item per class is the point here, not a regression target
                    warnings.filterwarnings("ignore", "The number of unique classes is greater than 50%", UserWarning)
                    pred = _fit_sklearn(xtr[idx], ytr[idx], C, [xte], max_iter)[0]
            else:
                pred = _fit_torch(xtr[idx], ytr[idx], C, [xte], max_iter, device)[0][0]
            hits.append(yte == pred)
        acc = [float(h.mean()) for h in hits]
        out[n] = {"accuracy": float(np.mean(acc)), "sd": float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0,
                  "accuracies": acc, "correct": np.mean(hits, 0)}
    return out
