"""Statistics behind the per-model table: a t-interval over seeds, Welch's t-test between every
two models with Holm's correction, ranks with ties, and capacity outliers.

Seeds are few (3 to 10), so the interval uses Student's t rather than the normal 1.96, and the
test does not assume equal variances: a stable model next to an unstable one is the common case.
"""
import itertools
import math
import warnings

import numpy as np
from scipy import stats as st

LEVEL = 0.95  # of the interval
ALPHA = 0.05  # a pair is significant when its Holm-adjusted p is below this
FACTOR = 2.0  # capacity outlier: E or G more than FACTOR times from the median of the other models


def t_interval(values, level=LEVEL):
    """(mean, std, n, low, high) of the seed values: mean ± t_{(1+level)/2, n-1} · s/√n.
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
    return mean, s, n, mean - half, mean + half


def holm(pvalues):
    """Holm's step-down adjustment; NaN entries (pairs not tested) stay NaN and do not count
    as hypotheses. Adjusted p_(k) = max over j <= k of min(1, (m - j + 1) · p_(j)), sorted."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, math.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - k) * p[i]))  # max keeps the adjusted p monotone
        out[i] = running
    return out


def welch(a, b):
    """(p, note): Welch's two-sided t-test of two models' seed values, or (NaN, why not).
    Two constant groups have no spread to measure a difference against (the standard error
    is 0), whether their constants agree or not, so they are not tested rather than guessed."""
    if len(a) < 2 or len(b) < 2:
        return math.nan, "not testable: n < 2"
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # ptp, not var: var of equal floats can be 1e-35
        return math.nan, "not testable: zero variance in both"
    with warnings.catch_warnings():  # one constant side is fine, but scipy warns of "nearly identical" data
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(st.ttest_ind(a, b, equal_var=False).pvalue)
    return (p, "") if math.isfinite(p) else (math.nan, "not testable: non-finite values")


def pairwise(values, direction):
    """Every two models on one metric, Holm-corrected over all of its pairs. `values`:
    {model: array of ok-seed values}; `direction`: "↑" or "↓". One dict per pair (a < b by name)."""
    rows = []
    for a, b in itertools.combinations(sorted(values), 2):
        xa, xb = np.asarray(values[a], dtype=float), np.asarray(values[b], dtype=float)
        ma = float(xa.mean()) if len(xa) else math.nan
        mb = float(xb.mean()) if len(xb) else math.nan
        p, note = welch(xa, xb)
        rows.append({"model_a": a, "model_b": b, "mean_a": ma, "mean_b": mb, "diff": ma - mb, "p": p,
                     "p_holm": math.nan, "significant": False, "better": "", "note": note})
    for r, adjusted in zip(rows, holm([r["p"] for r in rows])):
        significant = bool(adjusted < ALPHA)  # NaN compares False: an untested pair is never significant
        a_wins = r["diff"] > 0 if direction == "↑" else r["diff"] < 0
        r.update(p_holm=adjusted, significant=significant,
                 better=(r["model_a"] if a_wins else r["model_b"]) if significant else "")
    return rows


def ranks(values, pairs):
    """{model: 1 + number of models significantly better}, so models the seeds cannot separate
    share a rank. None below two values: a model nothing can be tested against ranks nowhere
    (it would otherwise read as first)."""
    above = {m: 0 for m in values}
    for r in pairs:
        if r["better"]:
            above[r["model_b"] if r["better"] == r["model_a"] else r["model_a"]] += 1
    return {m: 1 + k if len(values[m]) >= 2 else None for m, k in above.items()}


def capacity_outliers(params, factor=FACTOR):
    """Models whose mean E or G parameter count is more than `factor`× above or below the median
    of the other models'. `params`: {model: {"params_e": x, "params_g": y}}. A count of 0 or NaN
    means the network is absent (a reference row), not small: it is skipped on both sides."""
    out = set()
    for col in ("params_e", "params_g"):
        have = {m: float(p[col]) for m, p in params.items()
                if isinstance(p.get(col), (int, float)) and math.isfinite(p[col]) and p[col] > 0}
        for m, v in have.items():
            others = [w for o, w in have.items() if o != m]
            if others and not (float(np.median(others)) / factor <= v <= float(np.median(others)) * factor):
                out.add(m)
    return sorted(out)
