"""Fréchet distance, Inception Score and kernel distance (KID) on precomputed features.

The formulas are torch-fidelity's own functions (the reference implementation the suite
matches): fid_statistics_to_metric (trace term sum(sqrt(eigvals(s1 s2))).real in float64, not
scipy's sqrtm, whose 1.11.2-1.12 releases return huge imaginary parts), isc_features_to_metric
(shuffle with rng_seed 2020, consecutive splits, population std) and kid_features_to_metric
(unbiased MMD^2, cubic polynomial kernel, random subsets). Our code is kept only where it adds
something: `feature_stats` (chunked float64 mean and covariance on the features' device, so 50k
x 2048 GPU features are reduced in place) and `kernel_distance` on CUDA (the same subsets and
formula in float64 on the GPU; torch-fidelity's numpy loop runs on the CPU). Tests check both
against torch-fidelity. The backbone (Inception, domain classifier) is chosen by the caller.
"""
import numpy as np
import torch

FIDELITY_SEED = 2020  # torch-fidelity's rng_seed: IS shuffles and KID draws its subsets with it
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
    """||mu1 - mu2||^2 + tr(s1) + tr(s2) - 2 tr sqrt(s1 s2) in float64, by torch-fidelity's
    fid_statistics_to_metric."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    mu1, mu2, sigma1, sigma2 = (_f64(t).cpu().numpy() for t in (mu1, mu2, sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics differ in shape: {mu1.shape}/{sigma1.shape} vs {mu2.shape}/{sigma2.shape}")
    return fid_statistics_to_metric({"mu": mu1, "sigma": sigma1}, {"mu": mu2, "sigma": sigma2},
                                    verbose=False)[KEY_METRIC_FID]


def frechet_distance(feats_a, feats_b):
    """Fréchet distance between two (N, d) feature sets. With Inception pool features this is FID;
    with any other backbone call it what it is (e.g. fd_digits), never FID."""
    return frechet_from_stats(*feature_stats(feats_a), *feature_stats(feats_b))


def inception_score(logits, splits=10, seed=FIDELITY_SEED):
    """(mean, std) over `splits` chunks of exp(E_x KL(p(y|x) || p(y))), p = softmax(logits) and
    p(y) the chunk's mean posterior, after shuffling the rows with np.random.RandomState(seed):
    torch-fidelity's isc_features_to_metric, in float64. `logits`: (N, C)."""
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

    logits = _f64(logits).cpu()
    if logits.dim() != 2:
        raise ValueError(f"logits must be (N, C), got shape {tuple(logits.shape)}")
    if not 1 <= splits <= len(logits):
        raise ValueError(f"splits={splits} needs 1 <= splits <= N={len(logits)}")
    out = isc_features_to_metric(logits, splits=splits, shuffle=True, rng_seed=seed)
    return out[KEY_METRIC_ISC_MEAN], out[KEY_METRIC_ISC_STD]


def _mmd2_unbiased(x, y, degree, gamma, coef0):
    m = len(x)
    k_xx = (x @ x.T * gamma + coef0) ** degree
    k_yy = (y @ y.T * gamma + coef0) ** degree
    k_xy = (x @ y.T * gamma + coef0) ** degree
    off_xx = k_xx.sum() - k_xx.diagonal().sum()
    off_yy = k_yy.sum() - k_yy.diagonal().sum()
    return ((off_xx + off_yy) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m)).item()


def kernel_distance(feats_a, feats_b, subsets=100, subset_size=1000, degree=3, gamma=None,
                    coef0=1, seed=FIDELITY_SEED):
    """KID: (mean, std) over `subsets` random subsets (drawn without replacement, a fresh draw
    from each set per subset, np.random.RandomState(seed)) of the unbiased MMD^2 with
    k(x, y) = (gamma <x, y> + coef0)^degree, gamma = 1/d by default. `subset_size` is clipped to
    the smaller sample count (torch-fidelity raises instead; callers record the clip). On the
    CPU this is torch-fidelity's kid_features_to_metric; on CUDA the same draws and formula run
    in float64 on the GPU (`_kid_torch`)."""
    a = torch.as_tensor(feats_a).detach()
    b = torch.as_tensor(feats_b).detach().to(a.device)
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"need (N, d) and (M, d) features, got {tuple(a.shape)} and {tuple(b.shape)}")
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError("KID needs at least 2 samples on each side")
    if a.is_cuda:
        return _kid_torch(a, b, subsets, m, degree, gamma, coef0, seed)
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    out = kid_features_to_metric(a.double(), b.double(), kid_subsets=subsets, kid_subset_size=m, kid_kernel="poly",
                                 kid_kernel_poly_degree=degree, kid_kernel_poly_gamma=gamma,
                                 kid_kernel_poly_coef0=coef0, rng_seed=seed, verbose=False)
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]


def _kid_torch(a, b, subsets, m, degree, gamma, coef0, seed):
    gamma = 1.0 / a.shape[1] if gamma is None else gamma
    rng = np.random.RandomState(seed)
    mmds = []
    for _ in range(subsets):
        ia = torch.from_numpy(rng.choice(len(a), m, replace=False)).to(a.device)
        ib = torch.from_numpy(rng.choice(len(b), m, replace=False)).to(a.device)
        mmds.append(_mmd2_unbiased(a[ia].double(), b[ib].double(), degree, gamma, coef0))
    return float(np.mean(mmds)), float(np.std(mmds))
