"""Mode coverage on a 2-D Gaussian mixture (ALI's 25-Gaussian grid, the 8-Gaussian ring), under
the two rules the literature uses, which give very different numbers on the same samples:

* `modes_nearest`, ALI's rule (Dumoulin et al. 2017, section 5 "mixture" experiment, the LaTeX
  source `paper/adversarially_learned_inference.tex` of IshmaelBelghazi/ALI): every one of
  10,000 samples is assigned to the component of highest responsibility (equal weights and
  isotropic equal variances: the nearest centre), and a mode is dropped only when no sample at
  all is assigned to it. Any sample counts, however far from every centre.
* `modes_3sigma`, the rule of VEEGAN (Srivastava et al. 2017, Table 1: "the number of mixture
  components whose mean is nearest to at least one high quality sample", high quality = within
  three standard deviations of the nearest mode, 2,500 samples) and PacGAN (Lin et al. 2018,
  same rule in its released `pacgan/extensions.py`, `MetricLogger`: distance < 3 sigma, a mode
  covered with one such sample, 2,500 samples). Computed on the first 2,500 of the samples
  (`n_3sigma`), so the count is the published one's; `min_count` raises the bar if wanted.

`high_quality` is the share of high-quality samples among those 2,500, `kl_modes` the KL
divergence of their histogram over the modes from uniform (the direction of PacGAN's "reverse
KL" column; its released code logs a JSD instead, so this column is ours).
"""
import torch


@torch.no_grad()
def mode_coverage(samples, centres, std, *, threshold=3.0, min_count=1, n_3sigma=2500):
    """Returns {"modes_nearest": modes with at least one sample by nearest-centre assignment, over
    all samples; over the first `n_3sigma` samples: "modes_3sigma": modes with at least
    `min_count` high-quality samples, "high_quality": the fraction within `threshold` std of their
    nearest centre, "kl_modes": KL(p || uniform) of the histogram p of high-quality samples over
    the M modes, "counts": high-quality samples per mode; "n_3sigma": the samples used}.

    kl_modes = sum_m p_m log(p_m M) over the modes with p_m > 0 (0 log 0 = 0; the uniform side
    is never 0, so no epsilon is needed); 0 for a perfectly balanced generator, log M when all
    high-quality samples sit on one mode. None when no sample is high quality (KL undefined)."""
    x = torch.as_tensor(samples, dtype=torch.float64).reshape(len(samples), -1)
    c = torch.as_tensor(centres, dtype=torch.float64).reshape(-1, x.shape[1])
    n, m = len(x), len(c)
    if n == 0 or m == 0:
        raise ValueError("need at least one sample and one centre")
    nearest_dist, nearest = torch.cdist(x, c).min(1)  # N x M is small here (toy data: M <= 25)
    k = min(n, n_3sigma)
    hq = nearest_dist[:k] <= threshold * std
    counts = torch.bincount(nearest[:k][hq], minlength=m)
    kl = None
    if counts.sum() > 0:
        p = counts.double() / counts.sum()
        kl = float(torch.xlogy(p, p * m).sum())
    return {"modes_nearest": int((torch.bincount(nearest, minlength=m) > 0).sum()),
            "modes_3sigma": int((counts >= min_count).sum()), "high_quality": float(hq.double().mean()),
            "kl_modes": kl, "counts": counts.tolist(), "n_3sigma": k}
