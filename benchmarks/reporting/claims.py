"""Each claim of the source texts tested on a study's runs, with its verdict (the per-target
ranking is ranking.py's).

A claim is tested with the design's power: rows that ran the same seeds are compared paired by
seed (Wilcoxon's signed-rank test, Hodges-Lehmann shift); a model-free reference side carries its
test-set interval (a normal test); sweep claims compare the selection phase's trials (a logistic
regression of failure, adjusted for the learning rate and Adam beta1); trend claims test each
model row over the truncation thresholds (Page's L on seeds). Holm's correction runs within each
claim's declared family, never over the whole table, and each interval is the test's own at the
family-adjusted level: "supported" when the adjusted p < 0.05 with the effect in the claimed
direction, "contradicted" when significant the other way, "not resolved at this budget" otherwise,
"outside its scope" when the benchmark does not meet the claim's premise.
"""
import math
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats as st

from ..core.columns import direction
from . import stats
from .failures import failure_row
from .tables import markdown_table
from .trials import collapsed, finite, screened, trials_of

ALPHA = 0.05
SUPPORTED, CONTRADICTED, UNRESOLVED = "supported", "contradicted", "not resolved at this budget"
OUTSIDE = "outside its scope"
UNTESTED = "not tested yet: no finished runs of its rows"


def seed_values(df, row, metric):
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
    va = seed_values(final, a, claim.metric) if a else {}
    higher = direction(claim.metric) == "↑"
    if not claim.b.startswith("ref:"):
        b = _resolve(claim.b, chosen)
        vb = seed_values(final, b, claim.metric) if b else {}
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
    return pd.concat([trials_of(sel, m) for m in names]) if names else sel.iloc[:0]


def _sweep(claim, study, sel):
    """Models_a's screened trials against models_b's: how often they diverge or crash, how often
    they collapse (each a logistic regression adjusted for the learning rate and beta1, so a
    trial too slow to leave its start is not counted against its model), and how much the
    metric spreads over the finished trials (Brown-Forsythe)."""
    sel = screened(study, sel)
    ga, gb = _group_runs(sel, claim.models_a), _group_runs(sel, claim.models_b)
    if not len(ga) or not len(gb):
        return []
    rows = [failure_row(claim, study, ga, gb, (ga["status"] != "ok").to_numpy(), (gb["status"] != "ok").to_numpy(),
                         "share of trials that diverge or crash")]
    if study.collapse:
        whole = pd.concat([ga, gb])
        down = collapsed(whole, study.collapse)
        ok_a, ok_b = ga[ga["status"] == "ok"], gb[gb["status"] == "ok"]
        rows.append(failure_row(claim, study, ok_a, ok_b, down.loc[ok_a.index].to_numpy(),
                                 down.loc[ok_b.index].to_numpy(),
                                 f"share of finished trials that collapse ({_collapse_text(study)})"))
    va = finite(ga.loc[ga["status"] == "ok", claim.metric]) if claim.metric in ga else pd.Series(dtype=float)
    vb = finite(gb.loc[gb["status"] == "ok", claim.metric]) if claim.metric in gb else pd.Series(dtype=float)
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


def num(v, digits=3):
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
        # a row not tested yet needs no second reason (its runs are missing, so no seeds are in common)
        note = f" ({r['note']})" if isinstance(r.get("note"), str) and r["note"] and r["verdict"] != UNTESTED else ""
        rows.append([f"**{r['claim']}**: {r['text']} ({r['source']})", f"{r['family']} ({r['family_size']})",
                     r["compared"], r["metric"], num(r["n"]), num(r.get("mean_a")), num(r.get("mean_b")),
                     f"{num(r.get('effect'))} [{num(r.get('effect_low'))}, {num(r.get('effect_high'))}{conf}]",
                     r["test"], f"{num(r['p'])} ({num(r['p_holm'])})", r.get("reachable") or "–",
                     num(r.get("p_a_better")), f"{r['verdict']}{note}"])
    return markdown_table(head, rows)


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
