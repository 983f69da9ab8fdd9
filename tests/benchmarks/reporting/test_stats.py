"""The statistics of the per-model table on numbers worked out by hand."""
import math
import warnings

import numpy as np
import pytest
from scipy import stats as scipy_st
from scipy.stats import t as scipy_t

from benchmarks.reporting import stats


def test_t_interval_of_three_seeds_by_hand():
    mean, s, n, low, high = stats.t_interval([0.1, 0.2, 0.3])
    half = 4.302653 * 0.1 / math.sqrt(3)  # t_{0.975, 2} · s/√n = 0.248414
    assert (mean, s, n) == (pytest.approx(0.2), pytest.approx(0.1), 3)
    assert low == pytest.approx(0.2 - half, abs=1e-6) and high == pytest.approx(0.2 + half, abs=1e-6)
    assert high - mean == pytest.approx(0.248414, abs=1e-6)


def test_below_two_values_there_is_no_interval():
    mean, s, n, low, high = stats.t_interval([0.7])
    assert mean == 0.7 and n == 1 and all(math.isnan(v) for v in (s, low, high))
    assert stats.t_interval([])[2] == 0 and math.isnan(stats.t_interval([])[0])


def test_holm_on_known_p_values():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> monotone: 0.04 becomes 0.06
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    # an untested pair is not a hypothesis: two tested pairs are multiplied by 2 and 1
    adjusted = stats.holm([0.01, math.nan, 0.04])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.04)


def _seeds(*values):
    return {str(i): v for i, v in enumerate(values)}


def test_paired_t_on_common_seeds_matches_scipy_and_beats_welch_on_correlated_seeds():
    # seed effects shared by both models (0, 1, 2), a constant gap of about 0.1 on top
    a, b = _seeds(1.00, 2.01, 3.00), _seeds(0.90, 1.90, 2.91)
    r = stats.compare(a, b)
    d = np.array([0.10, 0.11, 0.09])
    assert r["test"] == "paired t" and r["n_pairs"] == 3 and r["diff"] == pytest.approx(0.1)
    assert r["p"] == pytest.approx(scipy_st.ttest_rel([1.0, 2.01, 3.0], [0.9, 1.9, 2.91]).pvalue)
    half = scipy_t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert (r["diff_low"], r["diff_high"]) == (pytest.approx(0.1 - half), pytest.approx(0.1 + half))
    assert r["p"] < 0.01 < scipy_st.ttest_ind([1.0, 2.01, 3.0], [0.9, 1.9, 2.91], equal_var=False).pvalue
    assert r["p_a_better"] == 1.0 and stats.compare(a, b, higher=False)["p_a_better"] == 0.0


def test_welch_when_seeds_are_not_shared_and_signed_rank_from_ten():
    r = stats.compare(_seeds(1.0, 2.0, 3.0), {"7": 2.0, "8": 4.0, "9": 6.0, "10": 8.0})
    # by hand: variances 1 and 20/3, se² = 1/3 + 5/3 = 2, t = (2 - 5)/√2, Welch-Satterthwaite df
    df = 2.0 ** 2 / ((1 / 3) ** 2 / 2 + (5 / 3) ** 2 / 3)
    assert r["test"] == "welch" and r["p"] == pytest.approx(2 * scipy_t.sf(3 / math.sqrt(2), df), rel=1e-10)
    assert r["diff"] == -3.0 and r["diff_low"] < -3.0 < r["diff_high"]
    assert r["p_a_better"] == pytest.approx(1.5 / 12)  # of the 12 (a, b) pairs: 3 > 2 wins, 2 = 2 ties
    rng = np.random.default_rng(0)
    base = rng.normal(size=10)
    r = stats.compare(_seeds(*(base + 1)), _seeds(*(base + rng.normal(0, 0.1, 10))))
    assert r["test"] == "signed-rank" and r["p"] == pytest.approx(2 / 1024)  # all ten differences positive


def test_constant_groups_are_decided_and_tiny_groups_are_not_tested():
    r = stats.compare(_seeds(0.991, 0.991, 0.991), _seeds(0.093, 0.093, 0.093))
    assert r["test"] == "constant" and r["p"] == 0.0 and r["diff"] == pytest.approx(0.898)
    assert stats.compare(_seeds(0.5, 0.5), _seeds(0.5, 0.5))["p"] == 1.0
    r = stats.compare({"0": 1.0}, _seeds(2.0, 3.0))  # one common seed only, and n < 2 on one side
    assert math.isnan(r["p"]) and r["note"].startswith("not testable")
    r = stats.compare(_seeds(0.1, 0.1, 0.1), _seeds(0.5, 0.6, 0.7))  # one side constant: testable
    assert r["test"] == "paired t" and r["p"] < 0.05


def test_intervals_stay_inside_the_metric_range():
    mean, _, _, low, high = stats.t_interval([0.0, 0.02, 0.06], bounds=(0.0, 1.0))
    assert low == 0.0 and 0 < mean < high < 1
    assert stats.t_interval([24.0, 25.0, 25.0], bounds=(0.0, 25.0))[4] == 25.0
    m, lo, hi = stats.bootstrap_interval([1, 0, 1, 1, 0, 1, 1, 1])
    assert m == 0.75 and 0 <= lo < m < hi <= 1
    assert stats.bootstrap_interval([0.3, 0.3]) == (0.3, 0.3, 0.3)


def test_capacity_outliers_against_the_median_of_the_others():
    params = {"a": {"params_e": 10.0, "params_g": 20.0}, "b": {"params_e": 11.0, "params_g": 21.0},
              "c": {"params_e": 12.0, "params_g": 19.0}, "big-e": {"params_e": 100.0, "params_g": 20.0},
              "small-g": {"params_e": 11.0, "params_g": 9.0}, "ref": {"params_e": 0.0, "params_g": math.nan}}
    assert stats.capacity_outliers(params) == {"big-e": ["params_e"], "small-g": ["params_g"]}  # 9 < 20 / 2 counts
    assert stats.capacity_outliers({"only": {"params_e": 5.0, "params_g": 5.0}}) == {}  # no others: no median
    assert stats.capacity_outliers({"x": {"params_e": 0, "params_g": 0}, "y": {"params_e": 0, "params_g": 0}}) == {}
    # D counts too: ALI's discriminator next to BiGAN-sized ones
    ds = {m: {"params_e": 10.0, "params_g": 10.0, "params_d": d}
          for m, d in (("bigan", 36.6), ("qp", 40.0), ("gan", 34.5), ("ali", 415.0))}
    assert stats.capacity_outliers(ds) == {"ali": ["params_d"]}


def test_two_constant_sides_with_the_same_value_are_not_different():
    """Means of equal floats can differ by a rounding error (0.1 * 3 / 3 != 0.1): two models
    constant at one value are the same, p = 1, not 'significant' on a 1e-17 difference."""
    from benchmarks.reporting.stats import compare

    res = compare({0: .1, 1: .1, 2: .1}, {5: .1, 6: .1})
    assert res["test"] == "constant" and res["diff"] == 0 and res["p"] == 1.0


def test_pairs_of_one_seed_models_are_left_out():
    """A folder of one-seed trials has no pair to test: no row per pair, while a one-seed model
    beside a three-seed one keeps its (untestable) row."""
    from benchmarks.reporting.stats import pairwise

    rows = pairwise({"a": {"0": 1.0}, "b": {"0": 2.0}, "c": {"0": 1.0, "1": 2.0, "2": 3.0}}, "↑")
    assert [(r["model_a"], r["model_b"]) for r in rows] == [("a", "c"), ("b", "c")]


def test_pairs_that_the_signed_rank_test_cannot_make_significant_say_so():
    """Ten seeds: the exact signed-rank p is at least 2 / 1024. Over 28 pairs (8 models) Holm can
    never bring it below 0.05, however clear the difference; over 3 pairs (3 models) it can."""
    seeds = range(10)
    def models(k):
        return {f"m{i}": {s: 10.0 * i + 0.01 * s * (i + 1) for s in seeds} for i in range(k)}

    many = {(r["model_a"], r["model_b"]): r for r in stats.pairwise(models(8), "↑")}
    clear = many[("m0", "m7")]
    assert clear["test"] == "signed-rank" and clear["p"] == pytest.approx(2 / 1024)
    assert not clear["significant"] and clear["note"].startswith("cannot be significant here")
    assert "28 pairs" in clear["note"]
    few = {(r["model_a"], r["model_b"]): r for r in stats.pairwise(models(3), "↑")}
    assert few[("m0", "m2")]["significant"] and few[("m0", "m2")]["note"] == ""


def test_the_signed_rank_p_is_scipys_on_ties_zeros_and_every_size():
    """wilcoxon_p runs scipy's own sign-flip permutation test on a vectorised statistic where scipy
    would enumerate the flips one by one (tied or zero differences, up to 13 pairs); elsewhere it
    is scipy's call. Either way the p-value is scipy's default one."""
    rng = np.random.default_rng(0)
    # probe-like ties and zeros: scipy's own permutation path up to 13 pairs (kept to 11 here, as
    # scipy takes seconds at 13), its normal approximation above
    cases = [rng.integers(-3, 4, size=n) / 450 for n in (*range(2, 12), 14, 15) for _ in range(2)]
    cases += [rng.normal(size=n) for n in (2, 5, 10, 13, 14, 20)]  # no ties: scipy's exact distribution
    cases = [d for d in cases if np.any(d != 0)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = [scipy_st.wilcoxon(d).pvalue for d in cases]
    assert sum(len(d) <= 13 and len(np.unique(np.abs(d))) < len(d) for d in cases) > 15  # the new path ran
    assert [stats.wilcoxon_p(d) for d in cases] == pytest.approx(expected, abs=1e-12)
