"""Intervals shared by the stages: over seeds (the per-model table, the study's claims) and over
test items (the model-free references evaluation computes once on a fixed test set).

Seeds are few (3 to 10), so the interval over seeds uses Student's t rather than the normal 1.96.
The paired tests between models, Holm's correction and the ranks are reporting's
(reporting/stats.py), which imports these.
"""
import math

import numpy as np
from scipy import stats as st

LEVEL = 0.95  # of the intervals


def t_interval(values, level=LEVEL, bounds=(-math.inf, math.inf)):
    """(mean, std, n, low, high) of the seed values: mean ± t_{(1+level)/2, n-1} · s/√n, then
    clipped to the metric's `bounds`. Clipping keeps the coverage: the true mean lies inside the
    range, so it lies in the clipped interval exactly when it lies in the unclipped one.
    Below two values there is no spread to estimate: std and the interval are NaN."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, 0, math.nan, math.nan
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, n, math.nan, math.nan
    s = float(x.std(ddof=1))
    half = float(st.t.ppf(0.5 + level / 2, n - 1)) * s / math.sqrt(n)
    lo, hi = bounds
    return mean, s, n, max(lo, mean - half), min(hi, mean + half)


def bootstrap_interval(per_item, level=LEVEL, seed=0):
    """(mean, low, high): the percentile bootstrap over test items of a mean of per-item scores,
    for a number computed once on a fixed test set (a reference); it stays inside the range of
    the per-item scores."""
    x = np.asarray(per_item, dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    if np.ptp(x) == 0:  # every resample has the same mean
        return (float(x[0]),) * 3
    ci = st.bootstrap((x,), np.mean, confidence_level=level, method="percentile", n_resamples=2000,
                      random_state=np.random.default_rng(seed), vectorized=True).confidence_interval
    return float(x.mean()), float(ci.low), float(ci.high)
