"""Statistics behind the per-model table: an interval over seeds kept inside the metric's range
(core/stats.py, shared with evaluation's references), a seed-paired (or Welch) test between every
two models with Holm's correction and an effect size beside each p-value, ranks with ties, and
capacity outliers.

Seeds are few (3 to 10), so the interval uses Student's t rather than the normal 1.96. Models
that ran the same seeds saw the same data order and noise stream (and, on the shared networks,
the same initial weights), so their outcomes are correlated seed by seed: they are compared on
the per-seed differences, which removes that shared variation. Only pairs without two common
seeds fall back to Welch's test, which does not assume equal variances.
"""
import itertools
import math
import warnings

import numpy as np
from scipy import stats as st

from ..core.stats import LEVEL, bootstrap_interval, t_interval  # noqa: F401 - report and study call stats.t_interval

ALPHA = 0.05  # a pair is significant when its Holm-adjusted p is below this
FACTOR = 2.0  # capacity outlier: E, G or D more than FACTOR times from the median of the other models
SIGNED_RANK_MIN = 10  # common seeds from which the signed-rank test replaces the paired t-test
CAPACITY_COLUMNS = ("params_e", "params_g", "params_d")


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


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():  # scipy warns of "nearly identical" data; the callers handle those cases
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


def wilcoxon_p(d):
    """The two-sided p of Wilcoxon's signed-rank test on the paired differences `d`, exactly as
    scipy.stats.wilcoxon gives it by default. With tied or zero differences on up to 13 pairs
    scipy enumerates all 2**n sign flips (permutation_test), but one flip at a time in Python:
    0.4 s a call, most of a large folder's report. The same permutation test runs here on a
    vectorised statistic. A sign flip leaves every |d| and so every rank as it is, so the
    statistic (the rank sum of the positive differences, zeros dropped) keeps the ranks of `d`."""
    d = np.asarray(d, dtype=float)
    nonzero = d[d != 0]
    tied_or_zero = len(nonzero) < len(d) or len(np.unique(np.abs(nonzero))) < len(nonzero)
    if not tied_or_zero or len(d) > 13:  # scipy's exact distribution, or its normal approximation
        return float(_quiet(st.wilcoxon, d).pvalue)
    ranks = np.zeros_like(d)
    ranks[d != 0] = st.rankdata(np.abs(nonzero))

    def r_plus(x, axis=-1):
        return np.sum(ranks * (x > 0), axis=axis)
    return float(st.permutation_test((d,), r_plus, permutation_type="samples", vectorized=True,
                                     n_resamples=np.inf, alternative="two-sided").pvalue)


def _p_better(d, higher):
    """P(A better than B) from differences a - b: per common seed when paired, or over every
    (a_i, b_j) pair (the common-language effect size); ties count one half."""
    d = d if higher else -d
    return float(np.mean(d > 0) + 0.5 * np.mean(d == 0))


def compare(a, b, higher=True, level=LEVEL):
    """One pair of models on one metric. a, b: {seed: value} of their finished seeds.
    Returns {test, n_a, n_b, n_pairs, diff, diff_low, diff_high, p, p_a_better, note}:
    - "paired t" on the common seeds (>= 2 of them), "signed-rank" (Wilcoxon) from
      SIGNED_RANK_MIN common seeds; diff is the mean per-seed difference a - b with its t-interval;
    - "welch" when fewer than two seeds are common: diff = mean(a) - mean(b), Welch's interval;
    - "constant": every seed gives the same difference (or both sides are constant), so there is
      no spread to test against and none is needed: the difference is decided exactly (p = 0 when
      it is not zero, 1 when it is) under this protocol, whose test set and noise are fixed."""
    common = sorted(set(a) & set(b))
    xa, xb = np.array([a[s] for s in sorted(a)], float), np.array([b[s] for s in sorted(b)], float)
    out = {"test": "", "n_a": len(xa), "n_b": len(xb), "n_pairs": len(common), "diff": math.nan,
           "diff_low": math.nan, "diff_high": math.nan, "p": math.nan, "p_a_better": math.nan, "note": ""}
    if len(xa) == 0 or len(xb) == 0:
        return {**out, "note": "not testable: no finished seed"}
    if not (np.isfinite(xa).all() and np.isfinite(xb).all()):
        return {**out, "note": "not testable: non-finite values"}

    # The difference, and the test: on the per-seed differences when two seeds are common.
    paired = len(common) >= 2
    if paired:
        pa, pb = (np.array([v[s] for s in common], float) for v in (a, b))
        d = pa - pb
        out.update(diff=float(d.mean()), p_a_better=_p_better(d, higher))
        if np.ptp(d) == 0:  # ptp, not var: var of equal floats can be 1e-35
            test = "constant"
        else:
            test = "signed-rank" if len(common) >= SIGNED_RANK_MIN else "paired t"
    else:
        out.update(diff=float(xa.mean() - xb.mean()), p_a_better=_p_better((xa[:, None] - xb[None, :]).ravel(), higher))
        if len(xa) < 2 or len(xb) < 2:
            return {**out, "note": "not testable: n < 2 and fewer than 2 common seeds"}
        test = "constant" if np.ptp(xa) == 0 and np.ptp(xb) == 0 else "welch"
        if test == "constant":  # one value each side: their difference, not that of two rounded means
            out["diff"] = float(xa[0] - xb[0])

    # Its p-value and the interval of the difference.
    if test == "constant":  # no spread to test against: the difference is exact (see the docstring)
        low = high = out["diff"]
        p = 0.0 if out["diff"] != 0 else 1.0
        note = "the same difference on every common seed" if paired else "both constant over their seeds"
    else:
        res = _quiet(st.ttest_rel, pa, pb) if paired else _quiet(st.ttest_ind, xa, xb, equal_var=False)
        ci = res.confidence_interval(level)
        low, high = float(ci.low), float(ci.high)
        p = wilcoxon_p(d) if test == "signed-rank" else float(res.pvalue)
        note = ""
    return {**out, "test": test, "diff_low": low, "diff_high": high, "p": p, "note": note}


def pairwise(values, direction):
    """Every two models on one metric, Holm-corrected over all of its tested pairs. `values`:
    {model: {seed: value}} of ok runs; `direction`: "↑" or "↓". One dict per pair (a < b by name),
    except pairs of two models with fewer than two finished seeds each."""
    rows = []
    for a, b in itertools.combinations(sorted(values), 2):
        va, vb = values[a], values[b]
        if len(va) < 2 and len(vb) < 2:  # one value a side (a folder of one-seed trials): nothing to test,
            continue  # and their difference is in the table already; 10k such rows would bury the rest
        ma = float(np.mean(list(va.values()))) if va else math.nan
        mb = float(np.mean(list(vb.values()))) if vb else math.nan
        rows.append({"model_a": a, "model_b": b, "mean_a": ma, "mean_b": mb,
                     **compare(va, vb, higher=direction == "↑"), "p_holm": math.nan, "significant": False,
                     "better": ""})
    tested = sum(math.isfinite(r["p"]) for r in rows)
    for r, adjusted in zip(rows, holm([r["p"] for r in rows])):
        significant = bool(adjusted < ALPHA)  # NaN compares False: an untested pair is never significant
        a_wins = r["diff"] > 0 if direction == "↑" else r["diff"] < 0
        r.update(p_holm=adjusted, significant=significant,
                 better=(r["model_a"] if a_wins else r["model_b"]) if significant else "")
        # The exact signed-rank test on n seeds cannot give p below 2 / 2**n (every seed's
        # difference the same sign), and Holm multiplies the smallest p by the number of pairs:
        # with 10 seeds and 28 pairs (8 models) no pair can reach 0.05, whatever the data. Say so
        # beside the p-value, so that "not significant" is not read as "no difference".
        floor = 2.0 / 2 ** r["n_pairs"]
        if r["test"] == "signed-rank" and floor * tested >= ALPHA and not significant:
            r["note"] = (f"cannot be significant here: the signed-rank test's smallest p on {r['n_pairs']} seeds "
                         f"is {floor:.4f} and Holm over {tested} pairs needs it below {ALPHA / tested:.4f}; "
                         "read the interval")
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


def capacity_outliers(params, factor=FACTOR, by_design=None):
    """{model: [columns]} of models whose mean E, G or D parameter count is more than `factor`×
    above or below the median of the other models'. `params`: {model: {"params_e": x, ...}}.
    A count of 0 or NaN means the network is absent (a reference row), not small: it is skipped on
    both sides. `by_design`: {model: {column: reason}}, what the method's published design makes
    larger; such a column is still reported (the reader should know), under its reason."""
    out = {}
    for col in CAPACITY_COLUMNS:
        have = {m: float(p[col]) for m, p in params.items()
                if isinstance(p.get(col), (int, float)) and math.isfinite(p[col]) and p[col] > 0}
        for m, v in have.items():
            others = [w for o, w in have.items() if o != m]
            if others and not (float(np.median(others)) / factor <= v <= float(np.median(others)) * factor):
                out.setdefault(m, []).append(col)
    return out


# --- claims: tests whose interval agrees with their p-value ------------------------------------
# A claim's verdict and its interval must not disagree, so each claim test below pairs its
# p-value with the interval made by inverting that same test: the interval at level 1 - a holds
# exactly the effects the test would not reject at a. With the family-adjusted a of holm_levels,
# an interval excludes 0 exactly when the row's Holm-adjusted p is below ALPHA.


def signed_rank_floor(n):
    """The smallest two-sided p the exact signed-rank test can give on n pairs: every pair on one side."""
    return 2.0 / 2 ** n if n else 1.0


def signed_rank(d):
    """(Hodges-Lehmann shift, p, interval(a)) of the Wilcoxon signed-rank test of paired
    differences `d` (scipy's exact distribution up to 50 pairs without ties). The shift is the
    median of the Walsh averages (d_i + d_j) / 2, i <= j; interval(a) the shifts the test does not
    reject at level a, found by evaluating scipy's p on every stretch between consecutive Walsh
    averages (p is constant on each), so the interval is the test's own."""
    d = np.asarray(d, dtype=float)
    walsh = ((d[:, None] + d[None, :]) / 2)[np.triu_indices(len(d))]
    shift = float(np.median(walsh))
    p = wilcoxon_p(d)
    w = np.unique(walsh)
    # one point inside each stretch: below the first average, between each two, above the last
    probes = np.concatenate([[w[0] - 1.0], (w[:-1] + w[1:]) / 2, [w[-1] + 1.0]])
    p_at = np.array([wilcoxon_p(d - m) for m in probes])

    def interval(a):
        kept = np.flatnonzero(p_at >= a)
        if not len(kept):
            return shift, shift
        i, j = kept[0], kept[-1]
        return (float(w[i - 1]) if i > 0 else -math.inf), (float(w[j]) if j < len(w) else math.inf)
    return shift, p, interval


def z_test(diff, se):
    """(p, interval(a)) of a normal test of `diff` with standard error `se` (two-sided)."""
    if not se > 0:
        return (0.0 if diff else 1.0), (lambda a: (diff, diff))
    p = float(2 * st.norm.sf(abs(diff) / se))
    return p, (lambda a: (diff - st.norm.ppf(1 - a / 2) * se, diff + st.norm.ppf(1 - a / 2) * se))


def holm_levels(pvalues, alpha=ALPHA):
    """(Holm-adjusted p, the significance level each row's interval is read at) for one family.
    Rows in ascending p: the j-th of m rejected rows is read at alpha / (m - j + 1), the step
    that rejected it; once r rows are rejected, every other row at alpha / (m - r), the step at
    which Holm stopped. So an interval at 1 - level excludes 0 exactly when the row is rejected
    (Strassburger & Bretz 2008 give intervals compatible with Holm's procedure in this spirit).
    NaN p-values (rows not tested) get NaN for both."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = holm(p)
    levels = np.full(p.shape, math.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    m = len(order)
    rejected = int(sum(adjusted[i] < alpha for i in order))
    for j, i in enumerate(order, start=1):
        levels[i] = alpha / (m - j + 1) if j <= rejected else alpha / (m - rejected)
    return adjusted, levels


def letter_groups(names, means, separated, higher):
    """A compact letter display: {name: letters}, best mean first. Two names share a letter
    exactly when no test separated them ({frozenset((a, b))} of the significant pairs). Built
    on the ranking by mean: each letter is a maximal run of consecutive names in that order
    that no test separates (the "line" display of multiple-comparison tables), runs inside a
    longer one dropped."""
    order = sorted(names, key=lambda n: -means[n] if higher else means[n])
    runs = []
    for i in range(len(order)):
        j = i
        while j + 1 < len(order) and all(frozenset((order[k], order[j + 1])) not in separated for k in range(i, j + 1)):
            j += 1
        if not any(a <= i and j <= b for a, b in runs):
            runs.append((i, j))
    letters = {n: "" for n in order}
    for k, (a, b) in enumerate(runs):
        for n in order[a:b + 1]:
            letters[n] += chr(ord("a") + k) if k < 26 else f"[{k}]"
    return letters
