"""The study's claims table: verdicts within declared families, intervals that agree with them,
claims outside their scope, the failure regression and the per-target ranking. No training: the
tables are built from hand-made run records."""
import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from benchmarks.reporting import stats
from benchmarks.reporting.claims import CONTRADICTED, OUTSIDE, SUPPORTED, UNRESOLVED, claims_table
from benchmarks.reporting.ranking import ranking_markdown, ranking_table
from benchmarks.study.study import Claim, Study, Target

SEEDS = range(20)


def _study(claims, models=("a",), **changes):
    base = Study(name="t", benchmark="digits", budget="smoke", models=models, trials=1, validation_share=0.2,
                 selection_seeds=(100,), final_seeds=tuple(SEEDS), targets=(Target("r", "probe_acc", "max"),),
                 arms={}, references=(), select_set=(), final_set=(), collapse={}, claims=tuple(claims))
    return dataclasses.replace(base, **changes)


def _final(rows):
    """Run records of rows {name: per-seed values of probe_acc}."""
    return pd.DataFrame([{"model": name, "seed": s, "status": "ok", "probe_acc": v}
                         for name, values in rows.items() for s, v in zip(SEEDS, values)])


rng = np.random.default_rng(0)
FINAL = _final({
    "a": 0.90 + 0.01 * rng.standard_normal(20),
    "b": 0.85 + 0.01 * rng.standard_normal(20),  # a is clearly better
    "c": 0.90 + 0.01 * rng.standard_normal(20),  # as good as a
    "d": 0.899 + 0.01 * rng.standard_normal(20),  # a hair below a: p near the bar
    **{f"x{k}": 0.5 + 0.01 * rng.standard_normal(20) for k in range(12)},
})


def test_unrelated_claims_do_not_change_a_claims_verdict():
    """Holm runs within a family: the same claim beside twelve unrelated ones keeps its p, its
    adjusted p, its interval and its verdict. Under one Holm over the whole table it would not:
    thirteen rows multiply its p."""
    claim = Claim("up", "a beats b", "src", "paired", "probe_acc", a="a", b="b")
    alone = claims_table(_study([claim]), {}, FINAL.iloc[:0], FINAL, {}).iloc[0]
    others = [Claim(f"u{k}", "", "", "paired", "probe_acc", a=f"x{k}", b=f"x{(k + 1) % 12}") for k in range(12)]
    crowded = claims_table(_study([*others[:6], claim, *others[6:]]), {}, FINAL.iloc[:0], FINAL, {})
    beside = crowded[crowded["claim"] == "up"].iloc[0]
    for col in ("p", "p_holm", "effect", "effect_low", "effect_high", "verdict", "family_size"):
        assert beside[col] == alone[col], col
    assert alone["verdict"] == SUPPORTED and alone["family_size"] == 1
    whole_table = stats.holm(crowded["p"].to_numpy(dtype=float))[crowded["claim"].tolist().index("up")]
    assert whole_table > alone["p_holm"]  # what the old table-wide correction did to it


def test_a_declared_family_shares_one_correction():
    fam = [Claim("one", "", "", "paired", "probe_acc", a="a", b="b", family="f"),
           Claim("two", "", "", "paired", "probe_acc", a="a", b="c", family="f")]
    table = claims_table(_study(fam), {}, FINAL.iloc[:0], FINAL, {})
    assert list(table["family_size"]) == [2, 2]
    assert list(table["p_holm"]) == list(stats.holm(table["p"].to_numpy(dtype=float)))


@pytest.mark.parametrize("b", ["b", "c", "d"])
def test_the_family_adjusted_interval_agrees_with_the_verdict(b):
    """An interval excludes 0 exactly when the verdict is supported or contradicted, in every
    family size, including a row whose p sits near the bar."""
    claims = [Claim("k", "", "", "paired", "probe_acc", a="a", b=b, family="f"),
              *(Claim(f"u{k}", "", "", "paired", "probe_acc", a=f"x{k}", b=f"x{k + 1}", family="f") for k in range(3))]
    table = claims_table(_study(claims), {}, FINAL.iloc[:0], FINAL, {})
    for _, r in table.iterrows():
        excludes = r["effect_low"] > 0 or r["effect_high"] < 0
        assert excludes == (r["verdict"] in (SUPPORTED, CONTRADICTED)), r.to_dict()
        assert r["effect_low"] <= r["effect"] <= r["effect_high"]


def test_signed_rank_interval_is_the_tests_own():
    """The shift is the median of the Walsh averages; at level a the interval holds 0 exactly when
    the test's p is at least a."""
    assert stats.signed_rank(np.array([1.0, 2.0, 9.0]))[0] == pytest.approx(np.median([1, 1.5, 5, 2, 5.5, 9]))
    d = np.random.default_rng(3).normal(0.2, 1, 15)
    _, p, interval = stats.signed_rank(d)
    lo, hi = interval(p * 0.999)
    assert lo <= 0 <= hi
    lo, hi = interval(p * 1.001)
    assert not lo <= 0 <= hi


def test_holm_levels_follow_the_steps():
    adjusted, levels = stats.holm_levels([0.001, 0.02, 0.03, 0.5])
    assert list(adjusted) == pytest.approx([0.004, 0.06, 0.06, 0.5])
    assert list(levels) == pytest.approx([0.05 / 4, 0.05 / 3, 0.05 / 3, 0.05 / 3])


def test_each_row_states_whether_its_test_can_reach_significance():
    """With 5 seeds the signed-rank test's smallest p is 2/32 = 0.0625: never significant, and the
    row says so instead of reading as "no difference"."""
    few = FINAL[FINAL["seed"] < 5]
    table = claims_table(_study([Claim("up", "", "", "paired", "probe_acc", a="a", b="b")]), {}, few.iloc[:0], few, {})
    row = table.iloc[0]
    assert row["p_floor"] == pytest.approx(2 / 32) and row["reachable"].startswith("no")
    assert row["verdict"] == UNRESOLVED


def test_a_claim_whose_premise_the_benchmark_lacks_is_outside_its_scope():
    claim = Claim("trunc", "", "BigGAN", "monotone", "cs_digits", premise="class-conditional")
    row = claims_table(_study([claim]), {}, FINAL.iloc[:0], FINAL, {}).iloc[0]
    assert row["verdict"] == OUTSIDE and "unconditional" in row["note"]


def test_a_reference_side_carries_its_test_set_uncertainty():
    """Against a model-free number with a wide test-set interval the same seeds are not enough;
    with a narrow one they are."""
    claim = Claim("px", "", "", "paired", "probe_acc", a="a", b="ref:raw")
    mean_a = FINAL.loc[FINAL["model"] == "a", "probe_acc"].mean()
    narrow = claims_table(_study([claim]), {}, FINAL.iloc[:0], FINAL, {"raw": [mean_a - 0.01, mean_a - 0.011,
                                                                               mean_a - 0.009]}).iloc[0]
    wide = claims_table(_study([claim]), {}, FINAL.iloc[:0], FINAL, {"raw": [mean_a - 0.01, mean_a - 0.05,
                                                                             mean_a + 0.03]}).iloc[0]
    assert narrow["verdict"] == SUPPORTED and wide["verdict"] == UNRESOLVED
    assert wide["effect_low"] < 0 < wide["effect_high"]


def test_the_ranking_groups_models_the_tests_cannot_separate():
    study = _study([], models=("a", "b", "c"))
    chosen = {m: {"r": {"row": m, "trial": 0, "options": {}}} for m in ("a", "b", "c")}
    table = ranking_table(study, chosen, FINAL)
    groups = dict(zip(table["model"], table["group"]))
    assert set(groups["a"]) & set(groups["c"])  # a and c: the same level, one group
    assert not set(groups["b"]) & set(groups["a"])  # b is separated from both
    assert table.iloc[-1]["model"] == "b" and list(table["rank"]) == [1, 2, 3]
    assert "every pair can be separated" in ranking_markdown(table)  # 3 pairs, 20 shared seeds
    alone = ranking_table(_study([], models=("a",)), {"a": chosen["a"]}, FINAL)
    assert "One model only: nothing to compare." in ranking_markdown(alone)


def test_the_ranking_says_when_its_design_cannot_separate_two_models():
    """Eleven models share 10 seeds: Holm over 55 pairs asks p < 0.05/55, and the signed-rank
    test's smallest p on 10 pairs is 0.002, so even b, worse on every seed, shares a's letter;
    the table says that the letter means nothing there."""
    names = ("a", "b", *(f"x{k}" for k in range(9)))
    study = _study([], models=names)
    chosen = {m: {"r": {"row": m, "trial": 0, "options": {}}} for m in names}
    ten = FINAL[FINAL["seed"].isin(SEEDS[:10])]
    table = ranking_table(study, chosen, ten)
    groups = dict(zip(table["model"], table["group"]))
    assert set(groups["a"]) & set(groups["b"])
    text = ranking_markdown(table)
    assert "55 pairs" in text and "sharing only 10 seeds cannot be separated" in text


def test_the_failure_regression_adjusts_for_the_learning_rate(monkeypatch):
    """Trials fail at high learning rates only, and group a drew more of them: unadjusted, a fails
    more often; adjusted for the learning rate, the group explains nothing."""
    from benchmarks.reporting import claims as report
    from benchmarks.study import study as studies

    rows, arms = [], {}
    r = np.random.default_rng(1)
    for model, share_high in (("qa", 0.7), ("qb", 0.3)):
        for k in range(60):
            lr = 10 ** (r.uniform(-2.5, -2) if r.random() < share_high else r.uniform(-5, -3))
            name = f"{model}.t{k:02d}"
            arms[name] = {"model": "bigan", "options": {"lr": lr, "adam_beta1": float(r.uniform(0, 1))}}  # drawn
            fails = lr > 10 ** -2.5 and r.random() < 0.8
            rows.append({"model": name, "seed": 100, "status": "diverged" if fails else "ok", "probe_acc": 0.5})
    monkeypatch.setattr(studies, "trial_arms", lambda study: arms)
    sel = pd.DataFrame(rows)
    claim = Claim("tune", "", "", "sweep", "probe_acc", models_a=("qa",), models_b=("qb",))
    row = report._sweep(claim, _study([claim]), sel)[0]
    assert "logistic regression" in row["test"] and "log10(lr)" in row["test"]
    assert row["mean_a"] > row["mean_b"] and row["p"] > 0.05
    low, high = row["interval"](0.05)
    assert low < 1 < high and math.isfinite(row["effect"])
