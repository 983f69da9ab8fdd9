"""Fréchet distance, Inception Score and kernel distance (KID) on precomputed features.

The formulas follow torch-fidelity 0.4 (the reference implementation the suite matches):
- FID's trace term is sum(sqrt(eigvals(sigma1 @ sigma2))).real in float64 (torch-fidelity >= 0.4,
  torchmetrics), not scipy's sqrtm, whose 1.11.2-1.12 releases return huge imaginary parts;
- IS splits the samples into `splits` consecutive chunks, std is the population std;
- KID is the unbiased MMD^2 with the cubic polynomial kernel over random subsets.
The backbone (Inception, domain classifier) is chosen by the caller; nothing here loads one.
"""
import numpy as np
import torch

_CHUNK = 8192  # rows per float64 chunk: bounds the temporary copies of a large feature matrix


def _f64(x):
    return torch.as_tensor(x).detach().to(torch.float64)


def feature_stats(feats):
    """(mu, sigma) of an (N, d) feature matrix in float64; sigma is the unbiased covariance
    (N - 1 denominator, as np.cov). Two passes over row chunks, so a float32 matrix of 160k x
    2048 never needs a full float64 copy and the centring is exact (no sum-of-squares cancellation)."""
    feats = torch.as_tensor(feats).detach()
    if feats.dim() != 2 or len(feats) < 2:
        raise ValueError(f"need an (N >= 2, d) feature matrix, got shape {tuple(feats.shape)}")
    n = len(feats)
    mu = sum(feats[i:i + _CHUNK].to(torch.float64).sum(0) for i in range(0, n, _CHUNK)) / n
    cov = torch.zeros(feats.shape[1], feats.shape[1], dtype=torch.float64, device=feats.device)
    for i in range(0, n, _CHUNK):
        c = feats[i:i + _CHUNK].to(torch.float64) - mu
        cov += c.T @ c
    return mu.cpu(), (cov / (n - 1)).cpu()


def frechet_from_stats(mu1, sigma1, mu2, sigma2):
    """||mu1 - mu2||^2 + tr(s1) + tr(s2) - 2 tr sqrt(s1 s2), all in float64.
    tr sqrt(s1 s2) = sum of sqrt of the eigenvalues of s1 @ s2 (real and >= 0 in exact arithmetic;
    tiny negative or complex round-off becomes complex sqrt, of which the real part is kept)."""
    mu1, mu2, sigma1, sigma2 = (_f64(t).cpu() for t in (mu1, mu2, sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics differ in shape: {tuple(mu1.shape)}/{tuple(sigma1.shape)} "
                         f"vs {tuple(mu2.shape)}/{tuple(sigma2.shape)}")
    diff = mu1 - mu2
    eig = torch.linalg.eigvals(sigma1 @ sigma2)  # complex128
    tr_covmean = eig.sqrt().real.sum()
    return float(diff.dot(diff) + sigma1.trace() + sigma2.trace() - 2 * tr_covmean)


def frechet_distance(feats_a, feats_b):
    """Fréchet distance between two (N, d) feature sets. With Inception pool features this is FID;
    with any other backbone call it what it is (e.g. fd_digits), never FID."""
    return frechet_from_stats(*feature_stats(feats_a), *feature_stats(feats_b))


def inception_score(probs, splits=10, shuffle_seed=None):
    """(mean, std) over `splits` consecutive chunks of exp(E_x KL(p(y|x) || p(y))), p(y) = the
    chunk's mean posterior. `probs`: (N, C) class posteriors (rows sum to 1). Chunks are the
    rows in the order given (generated samples are i.i.d.); `shuffle_seed` permutes them first
    with np.random.RandomState(seed), as torch-fidelity does with its rng_seed (2020)."""
    p = _f64(probs).cpu()
    if p.dim() != 2:
        raise ValueError(f"probs must be (N, C), got shape {tuple(p.shape)}")
    n = len(p)
    if not 1 <= splits <= n:
        raise ValueError(f"splits={splits} needs 1 <= splits <= N={n}")
    if shuffle_seed is not None:
        p = p[torch.from_numpy(np.random.RandomState(shuffle_seed).permutation(n))]
    scores = []
    for i in range(splits):
        chunk = p[i * n // splits:(i + 1) * n // splits]
        marginal = chunk.mean(0, keepdim=True)
        # xlogy: 0 log 0 = 0, so exactly-zero posteriors (one-hot inputs) are fine.
        kl = (torch.xlogy(chunk, chunk) - torch.xlogy(chunk, marginal)).sum(1)
        scores.append(kl.mean().exp().item())
    return float(np.mean(scores)), float(np.std(scores))


def _mmd2_unbiased(x, y, degree, gamma, coef0):
    m = len(x)
    k_xx = (x @ x.T * gamma + coef0) ** degree
    k_yy = (y @ y.T * gamma + coef0) ** degree
    k_xy = (x @ y.T * gamma + coef0) ** degree
    off_xx = k_xx.sum() - k_xx.diagonal().sum()
    off_yy = k_yy.sum() - k_yy.diagonal().sum()
    return ((off_xx + off_yy) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m)).item()


def kernel_distance(feats_a, feats_b, subsets=100, subset_size=1000, degree=3, gamma=None,
                    coef0=1, seed=2020):
    """KID: (mean, std) over `subsets` random subsets (drawn without replacement, a fresh draw
    from each set per subset) of the unbiased MMD^2 with k(x, y) = (gamma <x, y> + coef0)^degree,
    gamma = 1/d by default. Same subset draws as torch-fidelity (np.random.RandomState(seed),
    default seed 2020 = its rng_seed). `subset_size` is clipped to the smaller sample count
    (torch-fidelity #45 raises instead). Computed in float64 on the device of `feats_a`."""
    a = torch.as_tensor(feats_a).detach()
    b = torch.as_tensor(feats_b).detach().to(a.device)
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need (N, d) and (M, d) features, got {tuple(a.shape)} and {tuple(b.shape)}")
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError("KID needs at least 2 samples on each side")
    gamma = 1.0 / a.shape[1] if gamma is None else gamma
    rng = np.random.RandomState(seed)
    mmds = []
    for _ in range(subsets):
        ia = torch.from_numpy(rng.choice(len(a), m, replace=False)).to(a.device)
        ib = torch.from_numpy(rng.choice(len(b), m, replace=False)).to(a.device)
        mmds.append(_mmd2_unbiased(a[ia].double(), b[ib].double(), degree, gamma, coef0))
    return float(np.mean(mmds)), float(np.std(mmds))
