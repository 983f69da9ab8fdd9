"""Mode coverage on a 2-D Gaussian mixture (ALI's 25-Gaussian grid, the 8-Gaussian ring).

The criterion of ALI/VEEGAN/PacGAN: each sample goes to its nearest centre; it is "high quality"
when within `threshold` standard deviations (3) of that centre. A mode is covered when at least
`min_count` high-quality samples fall on it. Default min_count: PacGAN's convention, a mode is
lost with fewer than 20 of 2,500 samples on 25 modes, i.e. 1/5 of the count a uniform generator
would give a mode; generalised to N samples and M modes as max(1, floor(N / (5 M))). (PacGAN's
rule as recalled from the paper; VEEGAN counts a mode with a single high-quality sample, which
is min_count=1.) Reporting ">= 1 sample" lets 1% of stray samples "cover" a mode, hence 1/5.
"""
import math

import torch


@torch.no_grad()
def mode_coverage(samples, centres, std, *, threshold=3.0, min_count=None):
    """Returns {"modes_covered": int, "high_quality": fraction of samples that are high quality,
    "kl_modes": KL(p || uniform) of the histogram p of high-quality samples over the M modes,
    "counts": high-quality samples per mode, "min_count": the rule used}.

    kl_modes = sum_m p_m log(p_m M) over the modes with p_m > 0 (0 log 0 = 0; the uniform side
    is never 0, so no epsilon is needed); 0 for a perfectly balanced generator, log M when all
    high-quality samples sit on one mode. None when no sample is high quality (KL undefined)."""
    x = torch.as_tensor(samples, dtype=torch.float64).reshape(len(samples), -1)
    c = torch.as_tensor(centres, dtype=torch.float64).reshape(-1, x.shape[1])
    n, m = len(x), len(c)
    if n == 0 or m == 0:
        raise ValueError("need at least one sample and one centre")
    if min_count is None:
        min_count = max(1, math.floor(n / (5 * m)))
    dist = torch.cdist(x, c)  # N x M is small here (toy data: M <= 25)
    nearest_dist, nearest = dist.min(1)
    hq = nearest_dist <= threshold * std
    counts = torch.bincount(nearest[hq], minlength=m)
    kl = None
    if counts.sum() > 0:
        p = counts.double() / counts.sum()
        kl = float(torch.xlogy(p, p * m).sum())
    return {"modes_covered": int((counts >= min_count).sum()), "high_quality": float(hq.double().mean()),
            "kl_modes": kl, "counts": counts.tolist(), "min_count": int(min_count)}
