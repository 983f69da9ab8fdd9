"""k-nearest-neighbour accuracy: the parameter-free companion of the linear probe.

Cosine similarity on L2-normalised features for images (DINO / solo-learn / lightly
convention), Euclidean distance on the 2-D tasks (points and their codes),
where the norm, a point's radius, carries information that normalising would discard; then an
unweighted majority vote among the k nearest training points. We use the plain vote rather
than the exp(sim/T) weighted one because it has no temperature to tune or version (lightly #1840
broke published numbers by changing T). Ties between classes go to the tied class whose
best-ranked neighbour is nearest (for k = 1 this is the 1-NN rule; for an even
k on a binary attribute, a 50/50 split goes to the nearest neighbour's value).
"""
import torch

_MAX_ELEMENTS = 1 << 24  # similarity-matrix entries per test chunk (64 MB in float32)


def _features(x, device, metric):
    x = torch.as_tensor(x).detach().to(device=device, dtype=torch.float32)
    return torch.nn.functional.normalize(x, dim=1) if metric == "cosine" else x


def _vote(neigh_labels, n_classes):
    """neigh_labels: (B, k) class indices sorted by decreasing similarity -> (B,) predictions."""
    b, k = neigh_labels.shape
    counts = torch.zeros(b, n_classes, device=neigh_labels.device)
    counts.scatter_add_(1, neigh_labels, torch.ones_like(neigh_labels, dtype=counts.dtype))
    # Tie-break bonus < 1: (k - rank) / (k + 1) of each class's best-ranked neighbour.
    rank_bonus = (k - torch.arange(k, device=neigh_labels.device, dtype=counts.dtype)) / (k + 1)
    bonus = torch.zeros_like(counts).scatter_reduce_(1, neigh_labels, rank_bonus.expand(b, k),
                                                     reduce="amax")
    return (counts + bonus).argmax(1)


@torch.no_grad()
def knn_accuracy(train_x, train_y, test_x, test_y, k=20, device=None, metric="cosine", per_item=False):
    """Fraction of test points whose label is the majority label of their k nearest training
    points, by `metric`: "cosine" (image features) or "euclidean" (2-D points). y (N,): class
    labels. y (N, K) in {0, 1}: K attributes, each voted on separately; returns the mean accuracy
    over attributes. Runs in test chunks so the similarity matrix stays under 2^24 entries;
    `device` defaults to train_x's. per_item=True: the (N,) float64 CPU tensor of per-test-item
    scores instead (1/0, or the share of attributes right), whose mean is the accuracy."""
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    device = device if device is not None else torch.as_tensor(train_x).device
    xtr, xte = _features(train_x, device, metric), _features(test_x, device, metric)
    ytr = torch.as_tensor(train_y).to(device=device, dtype=torch.int64)
    yte = torch.as_tensor(test_y).to(device=device, dtype=torch.int64)
    if ytr.shape[:1] != xtr.shape[:1] or yte.shape[:1] != xte.shape[:1] or ytr.dim() != yte.dim():
        raise ValueError(f"shape mismatch: x {tuple(xtr.shape)} / y {tuple(ytr.shape)}, "
                         f"x {tuple(xte.shape)} / y {tuple(yte.shape)}")
    k = min(k, len(xtr))
    multilabel = ytr.dim() == 2
    if multilabel:
        if ((ytr != 0) & (ytr != 1)).any():
            raise ValueError("a 2-D y must hold 0/1 attributes")
        ytr_idx = ytr
    else:
        classes, ytr_idx = torch.unique(ytr, return_inverse=True)
    chunk = max(1, _MAX_ELEMENTS // max(1, len(xtr)))
    hits = []
    for i in range(0, len(xte), chunk):
        q = xte[i:i + chunk]
        sims = q @ xtr.T if metric == "cosine" else -torch.cdist(q, xtr)  # larger is nearer
        # topk's order among exactly equal similarities is unspecified; lower index first is
        # not guaranteed, so exact duplicates in train may tie-break either way.
        nn_idx = sims.topk(k, dim=1).indices  # sorted, most similar first
        if multilabel:
            neigh = ytr_idx[nn_idx]  # (B, k, K)
            b, _, n_att = neigh.shape
            pred = _vote(neigh.permute(0, 2, 1).reshape(b * n_att, k), 2).reshape(b, n_att)
            hits.append((pred == yte[i:i + chunk]).double().mean(1))
        else:
            pred = classes[_vote(ytr_idx[nn_idx], len(classes))]
            hits.append((pred == yte[i:i + chunk]).double())
    items = torch.cat(hits).cpu()
    return items if per_item else float(items.mean())


@torch.no_grad()
def nearest_neighbours(queries, gallery, k, metric="euclidean", exclude=None):
    """Indices (Q, k) of the k gallery rows nearest each query, nearest first.

    metric: "euclidean" (L2 distance) or "cosine" (largest cosine similarity). `exclude` (Q,)
    gallery indices never returned for their query (the query itself when it is in the gallery).
    The BiGAN-QP post shows both readings of "similar in latent space"."""
    q, gal = torch.as_tensor(queries).float(), torch.as_tensor(gallery).float()
    if metric == "euclidean":
        score = -torch.cdist(q, gal)
    elif metric == "cosine":
        score = torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(gal, dim=1).T
    else:
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    if exclude is not None:
        score[torch.arange(len(q)), torch.as_tensor(exclude)] = -float("inf")
    return score.topk(min(k, gal.shape[0] - (exclude is not None)), dim=1).indices
