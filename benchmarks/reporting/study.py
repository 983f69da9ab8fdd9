"""The report of a study (`sweep`): what the trials say about each model's sensitivity to its
hyperparameters, which settings were chosen, and each claim of the source texts with its test.

Reads only what the phases wrote: OUT/select and OUT/final (ordinary results folders, each with
its own report.md) and OUT/selection.json. Writes OUT/study.md, OUT/trials.csv, OUT/claims.csv,
OUT/best_of_k.csv and OUT/plots/.

- Expected best of k trials (Dodge et al. 2019, "Show Your Work"): with the n finished trials'
  validation scores sorted, v_(1) <= ... <= v_(n), the expected maximum of k trials drawn with
  replacement is sum_i v_(i) [(i/n)^k - ((i-1)/n)^k] (the minimum for a lower-is-better metric,
  by negation). The band is the 2.5-97.5 % percentile of that curve over bootstrap resamples
  of the trials.
- A claim is tested with the design's power: arms that ran the same seeds are compared paired by
  seed (stats.compare); Holm's correction runs over every test of the claims table; the verdict
  is "supported" when the corrected p < 0.05 and the effect lies in the claimed direction,
  "contradicted" when it is significant the other way, and otherwise "not resolved at this budget".
"""
import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats as st
from matplotlib.ticker import MaxNLocator

from ..core.errors import UserError
from ..core.io import atomic_write_text
from . import stats
from .folders import collect, read_references
from .plots import model_colour, plt, save_figure
from .report import bounds, direction, markdown_table

ALPHA = 0.05
BOOTSTRAP = 1000
SUPPORTED, CONTRADICTED, UNRESOLVED = "supported", "contradicted", "not resolved at this budget"
OUTSIDE = "outside its scope"
UNTESTED = "not tested yet: no finished runs of its rows"


def expected_best(values, ks, goal):
    """E[best of k trials] for each k in `ks`, from the finished trials' `values` (Dodge et al.)."""
    v = np.sort(np.asarray(values, dtype=float) * (1 if goal == "max" else -1))
    n = len(v)
    if n == 0:
        return np.full(len(ks), np.nan)
    i = np.arange(1, n + 1)
    out = np.array([np.sum(v * ((i / n) ** k - ((i - 1) / n) ** k)) for k in ks])
    return out if goal == "max" else -out


def best_of_k(values, ks, goal, seed=0):
    """(mean curve, low, high): expected best of k with its bootstrap band over the trials."""
    values = np.asarray(values, dtype=float)
    curve = expected_best(values, ks, goal)
    if len(values) < 2:
        return curve, curve, curve
    rng = np.random.default_rng(seed)
    boot = np.array([expected_best(rng.choice(values, len(values)), ks, goal) for _ in range(BOOTSTRAP)])
    return curve, np.percentile(boot, 2.5, axis=0), np.percentile(boot, 97.5, axis=0)


def _finite(series):
    return pd.to_numeric(series, errors="coerce").replace([np.inf, -np.inf], np.nan).dropna()


def _screen(study, sel):
    """The screen's runs: every trial on the first selection seed (the confirmation's reruns of
    the best trials on the other seeds are not draws from the search space)."""
    if "seed" not in sel or not len(sel):
        return sel
    return sel[pd.to_numeric(sel["seed"], errors="coerce") == study.selection_seeds[0]]


def _trials_of(sel, model):
    """The selection runs of `model`'s trials (arms named '<model>.tKK')."""
    return sel[sel["model"].astype(str).str.fullmatch(rf"{re.escape(model)}\.t\d+")]


def _trial_number(name):
    return int(str(name).rsplit(".t", 1)[1])


def _collapsed(rows, collapse):
    """Per finished run: below the collapse line. {"below": x}: a fixed line; {"relative": f}:
    under f times the best value any run of the same model reached (each model against its own
    best, so a model whose metric is low everywhere is not collapsed for that alone)."""
    metric = collapse.get("metric") if collapse else None
    if not metric or metric not in rows:
        return pd.Series(False, index=rows.index)
    score = pd.to_numeric(rows[metric], errors="coerce")
    ok = rows["status"] == "ok"
    if "relative" in collapse:
        base = rows["model"].astype(str).str.replace(r"\.t\d+$", "", regex=True)
        best = score.where(ok).groupby(base).transform("max")
        return ok & (score < collapse["relative"] * best)
    return ok & (score < collapse["below"])


def _failed(rows, collapse):
    """Per run: it did not finish (diverged, failed) or, finished, collapsed (_collapsed)."""
    return (rows["status"] != "ok") | _collapsed(rows, collapse)


def trials_table(study, sel):
    """One row per swept model: its screened trials, how many failed, trial 0's (the defaults')
    score and each target metric's spread over the random trials."""
    sel = _screen(study, sel)
    rows = []
    for m in study.models:
        t = _trials_of(sel, m)
        row = {"model": m, "trials": len(t), "ok": int((t["status"] == "ok").sum()),
               "diverged": int((t["status"] == "diverged").sum()), "failed": int((t["status"] == "failed").sum()),
               "collapsed": int(_collapsed(t, study.collapse).sum()),
               "failure_share": float(_failed(t, study.collapse).mean()) if len(t) else math.nan}
        numbers = t["model"].map(_trial_number) if len(t) else pd.Series(dtype=int)
        for target in study.targets:
            ok = t[(t["status"] == "ok") & (numbers > 0)] if target.metric in t else t.iloc[:0]
            v = _finite(ok[target.metric]) if len(ok) else pd.Series(dtype=float)
            default = _finite(t.loc[(numbers == 0) & (t["status"] == "ok"), target.metric]) \
                if target.metric in t else pd.Series(dtype=float)
            q1, med, q3 = (np.percentile(v, [25, 50, 75]) if len(v) else (math.nan,) * 3)
            best = (v.min() if target.goal == "min" else v.max()) if len(v) else math.nan
            row.update({f"{target.metric}_defaults": default.iloc[0] if len(default) else math.nan,
                        f"{target.metric}_median": med, f"{target.metric}_iqr": q3 - q1,
                        f"{target.metric}_best": best})
        rows.append(row)
    return pd.DataFrame(rows)


def best_of_k_table(study, sel):
    """Long table: model, target, k, expected best and its band, over the random trials only:
    trial 0 is the defaults, a choice rather than a draw, so it is shown apart (trials_table)."""
    sel = _screen(study, sel)
    rows = []
    for target in study.targets:
        for m in study.models:
            t = _trials_of(sel, m)
            t = t[t["model"].map(_trial_number) > 0] if len(t) else t
            if target.metric not in t or len(t) < 2:  # a model with nothing to tune has no curve
                continue
            v = _finite(t.loc[t["status"] == "ok", target.metric])
            if len(v) < 1:
                continue
            ks = list(range(1, len(t) + 1))
            curve, lo, hi = best_of_k(v.to_numpy(), ks, target.goal)
            rows += [{"target": target.name, "metric": target.metric, "model": m, "k": k, "expected_best": c,
                      "low": a, "high": b} for k, c, a, b in zip(ks, curve, lo, hi)]
    return pd.DataFrame(rows)


def best_of_k_figure(study, table, sel, out):
    if table.empty:
        return []
    sel = _screen(study, sel)
    targets = [t for t in study.targets if t.name in set(table["target"])]
    fig, axes = plt.subplots(2, len(targets), figsize=(4.4 * len(targets), 6.4), dpi=110, squeeze=False)
    for j, target in enumerate(targets):
        ax, strip = axes[0][j], axes[1][j]
        for i, (m, part) in enumerate(table[table["target"] == target.name].groupby("model", sort=False)):
            ax.plot(part["k"], part["expected_best"], color=model_colour(i), lw=1.3, label=m)
            ax.fill_between(part["k"], part["low"], part["high"], color=model_colour(i), alpha=0.15, lw=0)
            v = _finite(_trials_of(sel, m).query("status == 'ok'")[target.metric])
            strip.scatter(np.full(len(v), i) + np.linspace(-0.2, 0.2, len(v)), v, s=9, color=model_colour(i))
        ax.set_xlabel("random trials k")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        # Short axis labels: the long ones ran into the neighbouring panel.
        ax.set_ylabel(f"validation {target.metric} {direction(target.metric)}")
        ax.set_title(f"{target.name}: expected best of k trials", fontsize=10)
        names = list(dict.fromkeys(table[table["target"] == target.name]["model"]))
        strip.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        strip.set_ylabel(f"validation {target.metric}")
        strip.set_title("every finished trial (seed of the screen)", fontsize=10)
    # One legend under the figure, so that no curve hides behind it.
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    save_figure(fig, out / "plots" / "best_of_k.png", bbox_inches="tight")
    return [("plots/best_of_k.png", "Top: the expected best validation score of k random trials (Dodge et al. 2019; "
             "trial 0, the defaults, left out) with its 95 % bootstrap band; a curve still improving at the last k "
             "says the budget, not the method, limits it. Bottom: every finished trial's validation score on the "
             "screen's seed (the spread over the search space).")]


def _seed_values(df, row, metric):
    part = df[(df["model"] == row) & (df["status"] == "ok")]
    if metric not in part:
        return {}
    return {int(s): float(v) for s, v in zip(part["seed"], pd.to_numeric(part[metric], errors="coerce"))
            if math.isfinite(v)}


def _resolve(name, chosen):
    """A claim's side: 'model@target' is the final row chosen for that target, else the row itself."""
    if "@" in name:
        model, target = name.split("@", 1)
        pick = (chosen.get(model) or {}).get(target)
        return pick["row"] if pick else None
    return name


# --- claim tests -------------------------------------------------------------------------------
# Each returns rows of the claims table: "p", "p_floor" (the smallest p its test can give with
# this many units), "interval" (a -> the effects the test does not reject at level a; see
# stats.signed_rank) and "a_better" (the effect lies in the claim's direction). claims_table then
# adjusts p within each family and reads every interval at the row's family-adjusted level.


def _paired_rows(compared, metric, va, vb, higher, claimed_up=None):
    """Row a against row b by seed: the signed-rank test of the per-seed differences a - b, the
    Hodges-Lehmann shift and the test's own interval. `claimed_up`: the claim's direction when it
    is not "a better than b" (a trend's segment)."""
    common = sorted(set(va) & set(vb))
    out = {"compared": compared, "metric": f"{metric} {'↑' if higher else '↓'}",
           "mean_a": np.mean(list(va.values())) if va else math.nan,
           "mean_b": np.mean(list(vb.values())) if vb else math.nan, "n": len(common), "test": "signed-rank",
           "effect": math.nan, "p": math.nan, "p_floor": math.nan, "p_a_better": math.nan, "a_better": False,
           "interval": None, "note": ""}
    if len(common) < 2:
        return {**out, "test": "", "note": "not testable: fewer than 2 seeds in common"}
    d = np.array([va[s] - vb[s] for s in common])
    up = higher if claimed_up is None else claimed_up
    out["p_a_better"] = float(np.mean((d > 0) if up else (d < 0)) + 0.5 * np.mean(d == 0))
    if np.ptp(d) == 0:  # no spread to test against: the difference is exact (stats.compare)
        diff = float(d[0])
        return {**out, "test": "constant", "effect": diff, "p": 0.0 if diff else 1.0, "p_floor": 0.0,
                "interval": lambda a: (diff, diff), "a_better": bool(diff and (diff > 0) == up),
                "note": "the same difference on every seed"}
    shift, p, interval = stats.signed_rank(d)
    return {**out, "effect": shift, "p": p, "p_floor": stats.signed_rank_floor(len(common)), "interval": interval,
            "a_better": bool(shift != 0 and (shift > 0) == up)}


def _paired(claim, chosen, final, refs):
    a = _resolve(claim.a, chosen)
    va = _seed_values(final, a, claim.metric) if a else {}
    higher = direction(claim.metric) == "↑"
    if not claim.b.startswith("ref:"):
        b = _resolve(claim.b, chosen)
        vb = _seed_values(final, b, claim.metric) if b else {}
        return [_paired_rows(f"{a} vs {b}", claim.metric, va, vb, higher)]
    # A model-free reference: one number on the same test split, with the test set's sampling
    # error (its bootstrap interval over test items) carried into the comparison beside the
    # spread over seeds: a normal test of mean(a) - reference with both standard errors.
    ref = refs.get(claim.b[4:])
    value, low, high = (ref + [math.nan] * 3)[:3] if isinstance(ref, list) else (ref, math.nan, math.nan)
    out = {"compared": f"{a} vs {claim.b[4:]} (reference)", "metric": f"{claim.metric} {direction(claim.metric)}",
           "mean_a": np.mean(list(va.values())) if va else math.nan, "mean_b": value, "n": len(va),
           "test": "normal (seeds + test-set bootstrap)", "p_floor": 0.0, "interval": None, "note": ""}
    if len(va) < 2 or not isinstance(value, (int, float)) or not math.isfinite(value):
        return [{**out, "effect": math.nan, "p": math.nan, "a_better": False, "p_a_better": math.nan, "test": "",
                 "note": "not testable: fewer than 2 seeds, or no reference value"}]
    x = np.array(list(va.values()))
    diff = float(x.mean() - value)
    se_ref = (high - low) / (2 * st.norm.ppf(0.975)) if math.isfinite(low) and math.isfinite(high) else 0.0
    p, interval = stats.z_test(diff, math.sqrt(x.var(ddof=1) / len(x) + se_ref ** 2))
    return [{**out, "effect": diff, "p": p, "interval": interval, "a_better": bool(diff and (diff > 0) == higher),
             "p_a_better": float(np.mean((x > value) if higher else (x < value)))}]


def _group_runs(sel, names):
    return pd.concat([_trials_of(sel, m) for m in names]) if names else sel.iloc[:0]


def _covariates(study, runs, names):
    """The trials' options the failure regression adjusts for: learning rates on a log10 scale,
    the rest as drawn; an option some trial's model lacks is left out."""
    options = study.trial_options()
    table = {}
    for opt in names:
        v = np.array([float(x) if isinstance(x := options.get(run, {}).get(opt), (int, float))
                      and not isinstance(x, bool) else math.nan for run in runs["model"]])
        if np.isfinite(v).all():
            table[f"log10({opt})" if opt.startswith("lr") else opt] = np.log10(v) if opt.startswith("lr") else v
    return pd.DataFrame(table, index=runs.index)


def _failure_row(claim, study, ga, gb, fa, fb, what):
    """The share of trials of group a and group b that fail (`fa`, `fb`: booleans per trial),
    compared by a logistic regression of failure on the group, adjusted for the trials' learning
    rate and Adam beta1 (statsmodels; the group's odds ratio with its Wald test and interval).
    Where the regression cannot be fitted (no failure at all, or the group separates them
    perfectly), Fisher's exact test of the 2x2 table with its conditional odds-ratio interval."""
    import statsmodels.api as sm

    runs = pd.concat([ga, gb])
    y = np.concatenate([fa, fb]).astype(float)
    group = np.r_[np.ones(len(fa)), np.zeros(len(fb))]
    cov = _covariates(study, runs, claim.adjust)
    out = {"compared": f"{'+'.join(claim.models_a)} vs {'+'.join(claim.models_b)}", "metric": f"{what} ↓",
           "mean_a": fa.mean(), "mean_b": fb.mean(), "n": f"{len(fa)} vs {len(fb)} trials", "p_floor": 0.0,
           "p_a_better": math.nan, "note": ""}
    if y.sum() == 0 or y.sum() == len(y):
        return {**out, "test": "none", "effect": math.nan, "p": math.nan, "a_better": False, "interval": None,
                "note": f"not testable: {'no' if y.sum() == 0 else 'every'} trial of either group "
                        f"{what.split(' (')[0]}"}
    X = sm.add_constant(pd.DataFrame({"group a": group, **{k: cov[k].to_numpy() for k in cov}}), has_constant="add")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a separation or non-convergence warning: use the exact test
            fit = sm.Logit(y, X).fit(disp=0, maxiter=200)
        if not fit.mle_retvals.get("converged", False) or not np.isfinite(fit.bse["group a"]):
            raise ValueError("no convergence")
        coef, p = float(fit.params["group a"]), float(fit.pvalues["group a"])
        return {**out, "test": f"logistic regression, adjusted for {', '.join(cov) or 'nothing'}",
                "effect": math.exp(coef), "p": p, "a_better": coef < 0,
                "interval": lambda a: tuple(float(math.exp(v)) for v in fit.conf_int(alpha=a).loc["group a"]),
                "note": "effect: odds ratio of failing, a against b"}
    except Exception:  # noqa: BLE001 - statsmodels signals separation in several ways
        table = [[int(fa.sum()), int(len(fa) - fa.sum())], [int(fb.sum()), int(len(fb) - fb.sum())]]
        odds = st.contingency.odds_ratio(table)
        p = float(st.fisher_exact(table).pvalue)
        return {**out, "test": "Fisher exact (the regression could not be fitted)", "effect": float(odds.statistic),
                "p": p, "a_better": fa.mean() < fb.mean(),
                "interval": lambda a: tuple(float(v) for v in odds.confidence_interval(1 - a)),
                "note": "effect: conditional odds ratio of failing, a against b; unadjusted"}


def _sweep(claim, study, sel):
    """Models_a's screened trials against models_b's: how often they diverge or crash, how often
    they collapse (each a logistic regression adjusted for the learning rate and beta1, so a
    trial too slow to leave its start is not counted against its model), and how much the
    metric spreads over the finished trials (Brown-Forsythe)."""
    sel = _screen(study, sel)
    ga, gb = _group_runs(sel, claim.models_a), _group_runs(sel, claim.models_b)
    if not len(ga) or not len(gb):
        return []
    rows = [_failure_row(claim, study, ga, gb, (ga["status"] != "ok").to_numpy(), (gb["status"] != "ok").to_numpy(),
                         "share of trials that diverge or crash")]
    if study.collapse:
        whole = pd.concat([ga, gb])
        collapsed = _collapsed(whole, study.collapse)
        ok_a, ok_b = ga[ga["status"] == "ok"], gb[gb["status"] == "ok"]
        rows.append(_failure_row(claim, study, ok_a, ok_b, collapsed.loc[ok_a.index].to_numpy(),
                                 collapsed.loc[ok_b.index].to_numpy(),
                                 f"share of finished trials that collapse ({_collapse_text(study)})"))
    va = _finite(ga.loc[ga["status"] == "ok", claim.metric]) if claim.metric in ga else pd.Series(dtype=float)
    vb = _finite(gb.loc[gb["status"] == "ok", claim.metric]) if claim.metric in gb else pd.Series(dtype=float)
    if len(va) >= 3 and len(vb) >= 3:
        # Brown-Forsythe is Student's t-test on the absolute deviations from each group's median
        # (Levene's test, centre = median, with two groups): its interval is that t-test's, so the
        # effect is the difference in mean absolute deviation of log(metric), a - b.
        la, lb = np.log(va.to_numpy()), np.log(vb.to_numpy())
        da, db = np.abs(la - np.median(la)), np.abs(lb - np.median(lb))
        res = st.ttest_ind(da, db)
        rows.append({"compared": f"{'+'.join(claim.models_a)} vs {'+'.join(claim.models_b)}",
                     "metric": f"spread of validation {claim.metric} over finished trials (mean |log − median|) ↓",
                     "mean_a": float(da.mean()), "mean_b": float(db.mean()), "n": f"{len(va)} vs {len(vb)} trials",
                     "effect": float(da.mean() - db.mean()), "p": float(res.pvalue), "p_floor": 0.0,
                     "test": "Brown-Forsythe (log scale)", "p_a_better": math.nan, "a_better": da.mean() < db.mean(),
                     "interval": lambda a, res=res: tuple(float(v) for v in res.confidence_interval(1 - a)),
                     "note": ""})
    return rows


def _collapse_text(study):
    c = study.collapse
    if not c:
        return ""
    if "relative" in c:
        return f"{c['metric']} < {c['relative']:g} × the model's best trial"
    return f"{c['metric']} < {c['below']}"


def _sweep_values(final, row, metric):
    """{seed: {threshold: value}} of a final row's truncation sweeps."""
    out = {}
    for _, r in final[(final["model"] == row) & (final["status"] == "ok")].iterrows():
        path = Path(r["folder"]) / str(r["model"]) / f"seed{r['seed']}" / "truncation.csv"
        try:
            sweep = pd.read_csv(path)
            out[int(r["seed"])] = dict(zip(sweep["threshold"].astype(float), sweep[metric].astype(float)))
        except (OSError, ValueError, KeyError):
            continue
    return out


def _trend_rows(study, claim, chosen, final):
    """The shape of the truncation sweep, tested per model row with seeds as the replicates (the
    reference rows left out). interior-minimum: two paired rows per model, the score at the
    pivot threshold against the untruncated one ("improves as the threshold falls") and the
    lowest threshold against the pivot ("then worsens"); monotone: the score at the lowest
    threshold against the untruncated one."""
    higher = direction(claim.metric) == "↑"
    names = [_resolve(n, chosen) for n in claim.rows] or list(dict.fromkeys(
        pick["row"] for m in study.models for t in study.targets if t.metric == claim.metric
        if (pick := (chosen.get(m) or {}).get(t.name))))
    rows = []
    for name in names:
        per_seed = _sweep_values(final, name, claim.metric) if name else {}
        thresholds = sorted({t for v in per_seed.values() for t in v})
        if len(thresholds) < 3:
            continue
        low, top = thresholds[0], thresholds[-1]
        def at(t, per_seed=per_seed):
            return {s: v[t] for s, v in per_seed.items() if t in v}
        if claim.kind == "monotone":
            segments = [(low, top, "at the lowest threshold against none", True)]
        else:
            pivot = min(thresholds[1:-1], key=lambda t: abs(t - claim.pivot))
            segments = [(pivot, top, f"at {pivot:g} against none (improves as it falls)", True),
                        (low, pivot, f"at {low:g} against {pivot:g} (then worsens)", False)]
        for t_a, t_b, what, improves in segments:
            up = higher if improves else not higher  # the direction the claim expects of a - b
            row = _paired_rows(f"{name}: {claim.metric} {what}", claim.metric, at(t_a), at(t_b), higher, up)
            rows.append(row)
    return rows


def claims_table(study, chosen, sel, final, refs):
    """Every claim's rows, each family's p-values Holm-adjusted and its intervals read at the
    family-adjusted level (stats.holm_levels), so that an interval excludes 0 (or 1, for an odds
    ratio) exactly when the verdict is supported or contradicted."""
    rows = []
    for c in study.claims:
        if c.premise:
            tested = [{"compared": "", "metric": c.metric, "n": 0, "p": math.nan, "test": "", "note": c.scope_note,
                       "outside": True}]
        elif c.kind == "paired":
            tested = _paired(c, chosen, final, refs)
        elif c.kind == "sweep":
            tested = _sweep(c, study, sel)
        else:
            tested = _trend_rows(study, c, chosen, final)
        if not tested:
            tested = [{"compared": c.a or "", "metric": c.metric, "n": 0, "p": math.nan, "test": ""}]
        rows += [{"claim": c.id, "family": c.family_name, "text": c.text, "source": c.source, **t} for t in tested]
    df = pd.DataFrame(rows)
    for col in ("p_floor", "interval", "note", "a_better", "outside"):
        if col not in df:
            df[col] = None
    df["p_holm"] = math.nan
    df["level"] = math.nan
    df["family_size"] = 0
    for _, part in df.groupby("family", sort=False):
        adjusted, levels = stats.holm_levels(part["p"].to_numpy(dtype=float), ALPHA)
        df.loc[part.index, "p_holm"] = adjusted
        df.loc[part.index, "level"] = levels
        df.loc[part.index, "family_size"] = int(np.isfinite(part["p"].to_numpy(dtype=float)).sum())
    lows, highs = [], []
    for _, r in df.iterrows():
        fn = r["interval"]
        lo, hi = fn(r["level"]) if callable(fn) and math.isfinite(r["level"]) else (math.nan, math.nan)
        lows.append(lo)
        highs.append(hi)
    df["effect_low"], df["effect_high"] = lows, highs
    df["reachable"] = [_reachable(r) for _, r in df.iterrows()]
    df["verdict"] = [verdict(r["p_holm"], r) for _, r in df.iterrows()]
    return df.drop(columns=["interval", "outside"])


def _reachable(row):
    """Whether the row's test could be significant at all in its family: its smallest possible p
    below the bar Holm's first step sets (ALPHA / family size)."""
    floor, m = row.get("p_floor"), row.get("family_size") or 0
    if not isinstance(floor, (int, float)) or not math.isfinite(floor) or not m:
        return ""
    return "yes" if floor < ALPHA / m else f"no: p ≥ {floor:.2g} with n = {row['n']}, bar {ALPHA / m:.2g}"


def verdict(p_holm, row):
    if row.get("outside") is True:
        return OUTSIDE
    if not math.isfinite(p_holm) and not row.get("test"):  # its rows have no finished runs yet
        return UNTESTED
    if p_holm < ALPHA:
        return SUPPORTED if row.get("a_better") else CONTRADICTED
    return UNRESOLVED


def ranking_table(study, chosen, final):
    """Per target: each model's chosen row on the test split, best mean first, with a compact
    letter display of the groups the paired tests cannot separate (signed-rank on common seeds,
    Holm over the target's pairs): models that share a letter are not distinguishable here."""
    out = []
    for t in study.targets:
        higher = direction(t.metric) == "↑"
        values = {}
        for m in study.models:
            pick = (chosen.get(m) or {}).get(t.name)
            v = _seed_values(final, pick["row"], t.metric) if pick else {}
            if len(v) >= 2:
                values[m] = (pick["row"], v)
        pairs = [(a, b) for i, a in enumerate(values) for b in list(values)[i + 1:]]
        ps = []
        for a, b in pairs:
            va, vb = values[a][1], values[b][1]
            common = sorted(set(va) & set(vb))
            d = np.array([va[s] - vb[s] for s in common])
            ps.append(math.nan if len(d) < 2 else (0.0 if np.ptp(d) == 0 and d[0] else
                                                  1.0 if np.ptp(d) == 0 else stats.signed_rank(d)[1]))
        adjusted = stats.holm(ps)
        separated = {frozenset(pair) for pair, p in zip(pairs, adjusted) if p < ALPHA}
        means = {m: float(np.mean(list(v.values()))) for m, (_, v) in values.items()}
        letters = stats.letter_groups(list(values), means, separated, higher)
        for rank, m in enumerate(sorted(values, key=lambda n: -means[n] if higher else means[n]), start=1):
            v = list(values[m][1].values())
            mean, _, n, lo, hi = stats.t_interval(v, bounds=bounds(t.metric))
            out.append({"target": t.name, "metric": t.metric, "rank": rank, "model": m, "row": values[m][0],
                        "seeds": n, "mean": mean, "low": lo, "high": hi, "group": letters[m],
                        "pairs_in_family": len([p for p in ps if math.isfinite(p)])})
    return pd.DataFrame(out)


def _num(v, digits=3):
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def claims_markdown(df):
    head = ["claim", "family (m)", "compared (a vs b)", "metric", "n", "a", "b", "effect a − b [interval, level]",
            "test", "p (Holm in family)", "can reach p < bar", "P(a better)", "verdict"]
    rows = []
    for _, r in df.iterrows():
        level = r.get("level")
        conf = f", {100 * (1 - level):.4g} %" if isinstance(level, float) and math.isfinite(level) else ""
        note = f" {r['note']}" if isinstance(r.get("note"), str) and r["note"] else ""
        rows.append([f"**{r['claim']}**: {r['text']} ({r['source']})", f"{r['family']} ({r['family_size']})",
                     r["compared"], r["metric"], _num(r["n"]), _num(r.get("mean_a")), _num(r.get("mean_b")),
                     f"{_num(r.get('effect'))} [{_num(r.get('effect_low'))}, {_num(r.get('effect_high'))}{conf}]",
                     r["test"], f"{_num(r['p'])} ({_num(r['p_holm'])})", r.get("reachable") or "–",
                     _num(r.get("p_a_better")), f"{r['verdict']}{note}"])
    return markdown_table(head, rows)


def ranking_markdown(table):
    parts = []
    for (target, metric), part in table.groupby(["target", "metric"], sort=False):
        rows = [[str(r["rank"]), r["model"], r["row"], str(r["seeds"]),
                 f"{_num(r['mean'], 4)} [{_num(r['low'], 4)}, {_num(r['high'], 4)}]", r["group"]]
                for _, r in part.iterrows()]
        parts += [f"### {target}: {metric} {direction(metric)}\n",
                  markdown_table(["rank", "model", "row", "seeds", f"test {metric} [95 % over seeds]", "group"], rows),
                  ""]
    return "\n".join(parts)


def locked_study_report(out, study, figures=True):
    """Write the study report into `out` (under its lock) and return it as text."""
    from ..core.lock import FolderLock

    out = Path(out)
    if not (out / "select").is_dir():
        raise UserError(f"{out} holds no selection phase (select/): run the sweep first.")
    with FolderLock(out, "Study folder").acquire(wait=60):
        return write_study_report(out, study, figures)


def write_study_report(out, study, figures=True):
    sel = collect([out / "select"])
    final = collect([out / "final"]) if (out / "final").is_dir() else pd.DataFrame(columns=["model", "seed", "status"])
    chosen = json.loads((out / "selection.json").read_text()) if (out / "selection.json").exists() else {}
    refs = (read_references(out / "final" / "references.json") or {}).get("values", {})

    trials = trials_table(study, sel)
    bok = best_of_k_table(study, sel)
    figures = best_of_k_figure(study, bok, sel, out) if figures else []
    claims = claims_table(study, chosen, sel, final, refs) if study.claims else pd.DataFrame()
    ranking = ranking_table(study, chosen, final) if len(final) else pd.DataFrame()
    atomic_write_text(out / "trials.csv", trials.to_csv(index=False))
    atomic_write_text(out / "best_of_k.csv", bok.to_csv(index=False))

    parts = [f"# Study {study.name}: {study.benchmark}, {study.budget} budget\n",
             "\n".join(f"- {line}" for line in (_phase_line("select", sel, out), _phase_line("final", final, out))),
             f"- statistics: scipy {_version('scipy')}, statsmodels {_version('statsmodels')}", ""]
    if not claims.empty:
        atomic_write_text(out / "claims.csv", claims.to_csv(index=False))
        parts += ["## Claims\n", CLAIMS_HOW, "", claims_markdown(claims), ""]
    if not ranking.empty:
        atomic_write_text(out / "ranking.csv", ranking.to_csv(index=False))
        parts += ["## Which model, per target\n", RANKING_HOW, "", ranking_markdown(ranking)]
    parts += ["## Trials (selection phase, scored on validation)\n",
              f"{study.trials} trials per swept model (trial 0: its defaults), screened on seed "
              f"{study.selection_seeds[0]}; per model and target the {study.confirm_top} best also ran on seeds "
              f"{list(study.selection_seeds[1:])}, and the setting chosen has the best median over the "
              f"{len(study.selection_seeds)} seeds; {study.validation_share:g} of train held out for validation, "
              "generated samples scored against it. The columns below are over the screen; *_defaults* is trial 0, "
              "the others are over the random trials.\n",
              markdown_table(list(trials.columns), [[_num(v) for v in r] for r in trials.itertuples(index=False)]), ""]
    parts += [f"![{name}]({name})\n\n{text}\n" for name, text in figures]
    parts += ["## Chosen settings\n", _chosen_markdown(study, chosen), ""]
    if len(final):
        parts += [_final_markdown(study, chosen, final)]
    text = "\n".join(parts)
    atomic_write_text(out / "study.md", text)
    return text


CLAIMS_HOW = (
    "Each row tests one claim of a source text on this benchmark: row a (the design choice the claim "
    "credits) against row b (without it), on the metric named. Paired rows compare the same seeds: the "
    "effect is the Hodges-Lehmann shift of the per-seed differences a − b and the test Wilcoxon's "
    "signed-rank test; a `(reference)` side is a model-free score of the same test split whose test-set "
    "interval enters the comparison; sweep rows compare the selection phase's trials (failure odds "
    "ratios from a logistic regression adjusted for the learning rate and Adam β1). Holm's correction runs "
    "within each claim's declared *family* (m rows), never over the whole table, so a verdict does not "
    "depend on which other claims sit beside it; each interval is the test's own at the family-adjusted "
    "level shown (the Holm step that decided the row), so it excludes 0 (1 for an odds ratio) exactly when "
    "the verdict is supported or contradicted. *can reach p < bar*: whether the test's smallest possible p "
    "with this many seeds is below α/m at all. *supported*: adjusted p < 0.05 with the effect in the "
    "claimed direction; *contradicted*: significant the other way; *not resolved at this budget*: neither, "
    "which is not evidence that the claim is false; *outside its scope*: the claim presupposes what this "
    "benchmark does not have. A side written `model@target` is the setting chosen for that target on "
    "validation; `<model>-untrained` is that model's own networks at initialisation.")

RANKING_HOW = (
    "Each model at the setting chosen for the target on validation, scored on the test split over its final "
    "seeds, best mean first. Models sharing a letter are not separated by the paired signed-rank tests "
    "(Holm over the target's pairs): within a letter the answer is \"any of these\".")


def _version(package):
    import importlib.metadata as md

    try:
        return md.version(package)
    except md.PackageNotFoundError:
        return "not installed"


def _phase_line(phase, rows, out):
    """One line on what a phase ran and what it cost: runs by status, the summed run time, and
    the elapsed wall-clock from its first run's start to its last run's finish."""
    if not len(rows):
        return f"{phase}: not run yet"
    counts = rows["status"].value_counts().to_dict()
    compute = pd.to_numeric(rows.get("wall_seconds"), errors="coerce").sum() / 60
    # A run ends at its start plus its wall time, both from its records: file times would not
    # survive a copy or a git checkout of the folder.
    starts, ends = [], []
    for path in (out / phase).glob("*/seed*/config.json"):
        try:
            start = pd.Timestamp(json.loads(path.read_text())["started"].rsplit(" ", 1)[0])
            wall = float(json.loads((path.parent / "metrics.json").read_text())["wall_seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        starts.append(start)
        ends.append(start + pd.Timedelta(seconds=wall))
    elapsed = f", {(max(ends) - min(starts)).total_seconds() / 60:.1f} min elapsed" if starts and ends else ""
    return (f"{phase}: {len(rows)} runs ({', '.join(f'{n} {k}' for k, n in sorted(counts.items()))}), "
            f"{compute:.1f} min of run time summed over processes{elapsed}")


def _chosen_markdown(study, chosen):
    rows = []
    for m in study.models:
        for t in study.targets:
            pick = (chosen.get(m) or {}).get(t.name)
            if pick:
                opts = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in pick["options"].items())
                rows.append([m, t.name, f"{t.metric} {direction(t.metric)}", f"trial {pick['trial']}",
                             _num(pick["value"]), opts or "the defaults", pick["row"]])
            else:
                rows.append([m, t.name, t.metric, "none finished", "–", "–", "–"])
    return markdown_table(["model", "target", "metric", "chosen", "validation score", "options", "final row"], rows)


def _final_markdown(study, chosen, final):
    """Per target, each model's chosen row on the test split: mean [95 % interval over seeds]."""
    parts = ["## Final phase (chosen settings rerun on the test split)\n"]
    for t in study.targets:
        rows = []
        for m in study.models:
            pick = (chosen.get(m) or {}).get(t.name)
            if not pick:
                continue
            v = list(_seed_values(final, pick["row"], t.metric).values())
            mean, _, n, lo, hi = stats.t_interval(v, bounds=bounds(t.metric))  # inside the metric's range
            runs = final[final["model"] == pick["row"]]
            bad = int(((runs["status"] != "ok") | _collapsed(runs, study.collapse)).sum()) if len(runs) else 0
            # A chosen setting should not blow up: more than one seed in ten diverged, crashed or
            # collapsed (against the row's own best seed) is flagged.
            flag = f"{bad} of {len(runs)}" + (" ⚠ fragile" if bad * 10 > len(runs) else "")
            rows.append([m, pick["row"], str(n), f"{_num(mean, 4)} [{_num(lo, 4)}, {_num(hi, 4)}]", flag])
        parts += [f"### {t.name}: {t.metric} {direction(t.metric)}\n",
                  markdown_table(["model", "row", "seeds", f"test {t.metric}", "seeds diverged or collapsed"], rows),
                  ""]
    parts.append("Every row, metric, paired comparison and figure of the final phase: "
                 "[final/report.md](final/report.md).")
    return "\n".join(parts)
