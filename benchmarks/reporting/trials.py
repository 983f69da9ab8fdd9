"""The selection phase's trials as a table: each swept model's screened trials, how many failed
(diverged, crashed, or collapsed), its defaults' score and each target's spread over the random
trials, and the expected best of k trials.

- Expected best of k trials (Dodge et al. 2019, "Show Your Work"): with the n finished trials'
  validation scores sorted, v_(1) <= ... <= v_(n), the expected maximum of k trials drawn with
  replacement is sum_i v_(i) [(i/n)^k - ((i-1)/n)^k] (the minimum for a lower-is-better metric,
  by negation). The band is the 2.5-97.5 % percentile of that curve over bootstrap resamples
  of the trials. Trial 0 (a model's defaults) is not a random draw and is shown apart.
"""
import math
import re

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from .plots import model_colour, plt, save_figure
from .report import direction

BOOTSTRAP = 1000


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


def finite(series):
    return pd.to_numeric(series, errors="coerce").replace([np.inf, -np.inf], np.nan).dropna()


def screened(study, sel):
    """The screen's runs: every trial on the first selection seed (the confirmation's reruns of
    the best trials on the other seeds are not draws from the search space)."""
    if "seed" not in sel or not len(sel):
        return sel
    return sel[pd.to_numeric(sel["seed"], errors="coerce") == study.selection_seeds[0]]


def trials_of(sel, model):
    """The selection runs of `model`'s trials (arms named '<model>.tKK')."""
    return sel[sel["model"].astype(str).str.fullmatch(rf"{re.escape(model)}\.t\d+")]


def _trial_number(name):
    return int(str(name).rsplit(".t", 1)[1])


def collapsed(rows, collapse):
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


def failed(rows, collapse):
    """Per run: it did not finish (diverged, failed) or, finished, collapsed (collapsed)."""
    return (rows["status"] != "ok") | collapsed(rows, collapse)


def trials_table(study, sel):
    """One row per swept model: its screened trials, how many failed, trial 0's (the defaults')
    score and each target metric's spread over the random trials."""
    sel = screened(study, sel)
    rows = []
    for m in study.models:
        t = trials_of(sel, m)
        row = {"model": m, "trials": len(t), "ok": int((t["status"] == "ok").sum()),
               "diverged": int((t["status"] == "diverged").sum()), "failed": int((t["status"] == "failed").sum()),
               "collapsed": int(collapsed(t, study.collapse).sum()),
               "failure_share": float(failed(t, study.collapse).mean()) if len(t) else math.nan}
        numbers = t["model"].map(_trial_number) if len(t) else pd.Series(dtype=int)
        for target in study.targets:
            ok = t[(t["status"] == "ok") & (numbers > 0)] if target.metric in t else t.iloc[:0]
            v = finite(ok[target.metric]) if len(ok) else pd.Series(dtype=float)
            default = finite(t.loc[(numbers == 0) & (t["status"] == "ok"), target.metric]) \
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
    sel = screened(study, sel)
    rows = []
    for target in study.targets:
        for m in study.models:
            t = trials_of(sel, m)
            t = t[t["model"].map(_trial_number) > 0] if len(t) else t
            if target.metric not in t or len(t) < 2:  # a model with nothing to tune has no curve
                continue
            v = finite(t.loc[t["status"] == "ok", target.metric])
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
    sel = screened(study, sel)
    targets = [t for t in study.targets if t.name in set(table["target"])]
    fig, axes = plt.subplots(2, len(targets), figsize=(4.4 * len(targets), 6.4), dpi=110, squeeze=False)
    for j, target in enumerate(targets):
        ax, strip = axes[0][j], axes[1][j]
        for i, (m, part) in enumerate(table[table["target"] == target.name].groupby("model", sort=False)):
            ax.plot(part["k"], part["expected_best"], color=model_colour(i), lw=1.3, label=m)
            ax.fill_between(part["k"], part["low"], part["high"], color=model_colour(i), alpha=0.15, lw=0)
            v = finite(trials_of(sel, m).query("status == 'ok'")[target.metric])
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
