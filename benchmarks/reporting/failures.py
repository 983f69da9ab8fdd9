"""How often two groups of a study's trials fail (diverge, crash or collapse), compared with the
trials' options held fixed: the sweep claims' test (claims.py). A model whose trials drew more high
learning rates fails more often for that alone, so the group's effect is read from a logistic
regression adjusted for the options that decide it, with Fisher's exact test where no regression
can be fitted.
"""
import math
import warnings

import numpy as np
import pandas as pd
import scipy.stats as st


def covariates(study, runs, names):
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


def failure_row(claim, study, ga, gb, fa, fb, what):
    """The share of trials of group a and group b that fail (`fa`, `fb`: booleans per trial),
    compared by a logistic regression of failure on the group, adjusted for the trials' learning
    rate and Adam beta1 (statsmodels; the group's odds ratio with its Wald test and interval).
    Where the regression cannot be fitted (no failure at all, or the group separates them
    perfectly), Fisher's exact test of the 2x2 table with its conditional odds-ratio interval."""
    import statsmodels.api as sm

    runs = pd.concat([ga, gb])
    y = np.concatenate([fa, fb]).astype(float)
    group = np.r_[np.ones(len(fa)), np.zeros(len(fb))]
    cov = covariates(study, runs, claim.adjust)
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
