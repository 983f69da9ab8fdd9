"""The statistics of the per-model table on numbers worked out by hand."""
import math

import numpy as np
import pytest
from scipy.stats import t as scipy_t

from benchmarks import stats


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


def test_welch_matches_scipy_and_refuses_what_it_cannot_decide():
    p, note = stats.welch(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0, 8.0]))
    # by hand: variances 1 and 20/3, se² = 1/3 + 5/3 = 2, t = (2 - 5)/√2, Welch-Satterthwaite df
    df = 2.0 ** 2 / ((1 / 3) ** 2 / 2 + (5 / 3) ** 2 / 3)
    assert note == "" and df == pytest.approx(4.0755, abs=1e-4)
    assert p == pytest.approx(2 * scipy_t.sf(3 / math.sqrt(2), df), rel=1e-10) and p == pytest.approx(0.0999, abs=1e-4)
    assert stats.welch(np.array([1.0]), np.array([2.0, 3.0])) == (pytest.approx(math.nan, nan_ok=True),
                                                                  "not testable: n < 2")
    for b in ([0.1, 0.1, 0.1], [0.3, 0.3, 0.3]):  # equal or different constants: no spread to test against
        p, note = stats.welch(np.array([0.1, 0.1, 0.1]), np.array(b))
        assert math.isnan(p) and note == "not testable: zero variance in both"
    p, note = stats.welch(np.array([0.1, 0.1, 0.1]), np.array([0.5, 0.6, 0.7]))  # one side constant: testable
    assert note == "" and p < 0.05


def test_pairwise_winner_follows_the_direction_and_ranks_tie():
    values = {"a": np.array([1.0, 1.1, 1.2]), "b": np.array([5.0, 5.1, 5.2]), "c": np.array([1.05, 1.1, 1.25]),
              "d": np.array([9.0])}
    for arrow, winner in (("↑", "b"), ("↓", "a")):
        pairs = {(r["model_a"], r["model_b"]): r for r in stats.pairwise(values, arrow)}
        assert pairs[("a", "b")]["better"] == winner and pairs[("a", "b")]["significant"]
        assert pairs[("a", "b")]["diff"] == pytest.approx(-4.0)
        assert not pairs[("a", "c")]["significant"] and pairs[("a", "c")]["better"] == ""
        assert pairs[("a", "d")]["note"] == "not testable: n < 2" and math.isnan(pairs[("a", "d")]["p_holm"])
        ranks = stats.ranks(values, list(pairs.values()))
        assert ranks == ({"a": 2, "b": 1, "c": 2, "d": None} if arrow == "↑" else {"a": 1, "b": 3, "c": 1, "d": None})


def test_capacity_outliers_against_the_median_of_the_others():
    params = {"a": {"params_e": 10.0, "params_g": 20.0}, "b": {"params_e": 11.0, "params_g": 21.0},
              "c": {"params_e": 12.0, "params_g": 19.0}, "big-e": {"params_e": 100.0, "params_g": 20.0},
              "small-g": {"params_e": 11.0, "params_g": 9.0}, "ref": {"params_e": 0.0, "params_g": math.nan}}
    assert stats.capacity_outliers(params) == ["big-e", "small-g"]  # 9 < 20 / 2: below half counts too
    assert stats.capacity_outliers({"only": {"params_e": 5.0, "params_g": 5.0}}) == []  # no others: no median
    assert stats.capacity_outliers({"x": {"params_e": 0, "params_g": 0}, "y": {"params_e": 0, "params_g": 0}}) == []
