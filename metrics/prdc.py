"""Fidelity and diversity of generated samples as separate numbers, from k-nearest-neighbour
balls in a feature space: improved precision and recall (Kynkäänniemi et al. 2019, k = 3) and
density and coverage (Naeem et al. 2020, k = 5). A Fréchet distance mixes the two; these tell a
generator that draws good samples from few modes (high precision, low recall) from one that
spreads over the data with poor samples (the reverse).

Every sample of a set gets a ball reaching to its k-th nearest neighbour within that set.
- precision: the share of generated samples inside at least one real ball; recall: the share of
  real samples inside at least one generated ball. torch-fidelity's prc_features_to_metric.
- density: how many real balls a generated sample lies in, divided by k, averaged over the
  generated samples (about 1 for samples distributed like the real ones, above 1 where they crowd
  the dense real regions; unbounded above); coverage: the share of real samples whose ball holds
  at least one generated sample. Computed here as the authors' `prdc` package's compute_prdc
  (strict "<", the same radii; a test checks they agree), but in float64 blocks on the features'
  device: compute_prdc holds three full N x N distance matrices in memory and prints on each call.

All four depend on the sample counts (a ball shrinks as its set grows), so compare numbers made
on the same counts; the harness records them in its protocol notes.
"""
import torch

PR_K = 3  # Kynkäänniemi et al. 2019's neighbourhood size, torch-fidelity's default
DC_K = 5  # Naeem et al. 2020's
_BLOCK = 1024  # rows per distance block: a block x N matrix at a time, never N x N
# torch-fidelity's blocks: its blocked path runs a cdist and a kthvalue per block pair, so small
# blocks cost it several times the time; 4096 x 10,000 float32 distances are 160 MB.
_PR_BLOCK = 4096


def _features(x, device=None, dtype=torch.float64):
    x = torch.as_tensor(x).detach()
    if x.dim() != 2 or len(x) < 2:
        raise ValueError(f"need an (N >= 2, d) feature matrix, got shape {tuple(x.shape)}")
    return x.to(device=device if device is not None else x.device, dtype=dtype)


def _pair(fake, real, k, dtype=torch.float64):
    fake = _features(fake, dtype=dtype)
    real = _features(real, fake.device, dtype)
    if fake.shape[1] != real.shape[1]:
        raise ValueError(f"feature sizes differ: {fake.shape[1]} generated vs {real.shape[1]} real")
    if min(len(fake), len(real)) <= k:
        raise ValueError(f"k = {k} needs more than {k} samples on each side, got {len(fake)} generated and "
                         f"{len(real)} real")
    return fake, real


def knn_radii(x, k):
    """(N,) distance of each row of x to its k-th nearest other row: the (k + 1)-th smallest
    distance, the row itself counting as the first (compute_prdc's radii). topk rather than
    kthvalue: the same value, several times faster on a CPU."""
    x = _features(x)
    return torch.cat([torch.cdist(x[i:i + _BLOCK], x).topk(k + 1, dim=1, largest=False).values[:, -1]
                      for i in range(0, len(x), _BLOCK)])


def precision_recall(fake, real, k=PR_K):
    """(precision, recall) of generated features `fake` (M, d) against real features `real`
    (N, d) by torch-fidelity's prc_features_to_metric on fake's device, in float32 (the networks'
    features are float32, and torch-fidelity computes in the dtype it is given) and in blocks
    (its save_cpu_ram path: the same comparisons as its full-matrix path, a block at a time)."""
    from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

    fake, real = _pair(fake, real, k, torch.float32)
    out = prc_features_to_metric(fake, real, prc_neighborhood=k, prc_batch_size=_PR_BLOCK, save_cpu_ram=True,
                                 verbose=False)
    return out[KEY_METRIC_PRECISION], out[KEY_METRIC_RECALL]


def density_coverage(fake, real, k=DC_K):
    """(density, coverage) of generated features `fake` (M, d) against real features `real`
    (N, d), as prdc.compute_prdc(real, fake, k) computes them."""
    fake, real = _pair(fake, real, k)
    radii = knn_radii(real, k)
    inside = torch.zeros((), dtype=torch.float64, device=real.device)
    nearest_fake = torch.full((len(real),), torch.inf, dtype=torch.float64, device=real.device)
    for i in range(0, len(fake), _BLOCK):
        d = torch.cdist(fake[i:i + _BLOCK], real)  # (block, N)
        inside += (d < radii).sum()
        nearest_fake = torch.minimum(nearest_fake, d.min(0).values)
    return float(inside / (k * len(fake))), float((nearest_fake < radii).double().mean())


def prdc_scores(fake, real, pr_k=PR_K, dc_k=DC_K):
    """{"precision", "recall", "density", "coverage"} of `fake` against `real` (see the module)."""
    precision, recall = precision_recall(fake, real, pr_k)
    density, coverage = density_coverage(fake, real, dc_k)
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}
