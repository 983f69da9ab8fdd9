"""Linear probe: how linearly decodable the labels are from a representation."""
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler


def _np(t):
    return t.detach().cpu().double().numpy() if hasattr(t, "detach") else np.asarray(t, dtype=np.float64)


def linear_probe(train_x, train_y, test_x, test_y, *, C=1.0, max_iter=2000):
    """Multinomial logistic regression on standardised features, fit on train, scored on test.

    `train_y` of shape (N,) is one multi-class task; of shape (N, K) it is K binary tasks
    (e.g. CelebA attributes), scored by their mean accuracy. Returns {"accuracy": float}."""
    scaler = StandardScaler().fit(_np(train_x))
    ftr, fte = scaler.transform(_np(train_x)), scaler.transform(_np(test_x))
    ytr, yte = np.asarray(_np(train_y), dtype=np.int64), np.asarray(_np(test_y), dtype=np.int64)
    tasks = [(ytr, yte)] if ytr.ndim == 1 else [(ytr[:, k], yte[:, k]) for k in range(ytr.shape[1])]
    accs = []
    for a, b in tasks:
        if len(np.unique(a)) < 2:  # a constant label: the probe can only predict it
            accs.append(float(np.mean(b == a[0])))
            continue
        clf = LogisticRegression(C=C, max_iter=max_iter).fit(ftr, a)
        accs.append(float(clf.score(fte, b)))
    return {"accuracy": float(np.mean(accs))}
