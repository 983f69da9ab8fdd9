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
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats as st
from matplotlib.ticker import MaxNLocator

from ..core.errors import UserError
from ..core.io import atomic_write_text
from . import stats
from .folders import collect, read_references
from .plots import _save, model_colour, plt
from .report import bounds, direction, markdown_table

ALPHA = 0.05
BOOTSTRAP = 1000
SUPPORTED, CONTRADICTED, UNRESOLVED = "supported", "contradicted", "not resolved at this budget"
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


def _trials_of(sel, model):
    """The selection runs of `model`'s trials (arms named '<model>.tKK')."""
    return sel[sel["model"].astype(str).str.fullmatch(rf"{re.escape(model)}\.t\d+")]


def _failed(rows, collapse):
    """Per run: it did not finish (diverged, failed) or, finished, scores below the collapse line."""
    bad = rows["status"] != "ok"
    if collapse and collapse.get("metric") in rows:
        score = pd.to_numeric(rows[collapse["metric"]], errors="coerce")
        bad |= (rows["status"] == "ok") & (score < collapse["below"])
    return bad


def trials_table(study, sel):
    """One row per swept model: its trials, how many failed, and each target metric's spread."""
    rows = []
    for m in study.models:
        t = _trials_of(sel, m)
        row = {"model": m, "trials": len(t), "ok": int((t["status"] == "ok").sum()),
               "diverged": int((t["status"] == "diverged").sum()), "failed": int((t["status"] == "failed").sum()),
               "failure_share": float(_failed(t, study.collapse).mean()) if len(t) else math.nan}
        for target in study.targets:
            v = _finite(t.loc[t["status"] == "ok", target.metric]) if target.metric in t else pd.Series(dtype=float)
            q1, med, q3 = (np.percentile(v, [25, 50, 75]) if len(v) else (math.nan,) * 3)
            best = (v.min() if target.goal == "min" else v.max()) if len(v) else math.nan
            row.update({f"{target.metric}_median": med, f"{target.metric}_iqr": q3 - q1, f"{target.metric}_best": best})
        rows.append(row)
    return pd.DataFrame(rows)


def best_of_k_table(study, sel):
    """Long table: model, target, k, expected best and its band."""
    ks = list(range(1, study.trials + 1))
    rows = []
    for target in study.targets:
        for m in study.models:
            t = _trials_of(sel, m)
            if target.metric not in t:
                continue
            v = _finite(t.loc[t["status"] == "ok", target.metric])
            if len(v) < 1 or len(t) < 2:  # a model with nothing to tune has no curve
                continue
            curve, lo, hi = best_of_k(v.to_numpy(), ks, target.goal)
            rows += [{"target": target.name, "metric": target.metric, "model": m, "k": k, "expected_best": c,
                      "low": a, "high": b} for k, c, a, b in zip(ks, curve, lo, hi)]
    return pd.DataFrame(rows)


def best_of_k_figure(study, table, sel, out):
    if table.empty:
        return []
    targets = [t for t in study.targets if t.name in set(table["target"])]
    fig, axes = plt.subplots(2, len(targets), figsize=(4.4 * len(targets), 6.4), dpi=110, squeeze=False)
    for j, target in enumerate(targets):
        ax, strip = axes[0][j], axes[1][j]
        for i, (m, part) in enumerate(table[table["target"] == target.name].groupby("model", sort=False)):
            ax.plot(part["k"], part["expected_best"], color=model_colour(i), lw=1.3, label=m)
            ax.fill_between(part["k"], part["low"], part["high"], color=model_colour(i), alpha=0.15, lw=0)
            v = _finite(_trials_of(sel, m).query("status == 'ok'")[target.metric])
            strip.scatter(np.full(len(v), i) + np.linspace(-0.2, 0.2, len(v)), v, s=9, color=model_colour(i))
        ax.set_xlabel("trials k")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        # Short axis labels: the long ones ran into the neighbouring panel.
        ax.set_ylabel(f"validation {target.metric} {direction(target.metric)}")
        ax.set_title(f"{target.name}: expected best of k trials", fontsize=10)
        names = list(dict.fromkeys(table[table["target"] == target.name]["model"]))
        strip.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        strip.set_ylabel(f"validation {target.metric}")
        strip.set_title("every finished trial", fontsize=10)
    # One legend under the figure, so that no curve hides behind it.
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    _save(fig, out / "plots" / "best_of_k.png")
    return [("plots/best_of_k.png", "Top: the expected best validation score of k trials (Dodge et al. 2019) with its "
             "95 % bootstrap band; a curve still improving at k = K says the budget, not the method, limits it. "
             "Bottom: every finished trial's validation score (the spread over the search space).")]


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


def _paired(claim, chosen, final, refs):
    a = _resolve(claim.a, chosen)
    va = _seed_values(final, a, claim.metric) if a else {}
    if claim.b.startswith("ref:"):  # a model-free reference: one number on the same test split
        ref = refs.get(claim.b[4:])
        value = ref[0] if isinstance(ref, list) else ref
        vb = {s: value for s in va} if isinstance(value, (int, float)) else {}
        b = f"{claim.b[4:]} (reference)"
    else:
        b = _resolve(claim.b, chosen)
        vb = _seed_values(final, b, claim.metric) if b else {}
    higher = direction(claim.metric) == "↑"
    res = stats.compare(va, vb, higher=higher)
    return {"compared": f"{a} vs {b}", "metric": f"{claim.metric} {direction(claim.metric)}",
            "mean_a": np.mean(list(va.values())) if va else math.nan,
            "mean_b": np.mean(list(vb.values())) if vb else math.nan, "n": res["n_pairs"], "effect": res["diff"],
            "effect_low": res["diff_low"], "effect_high": res["diff_high"], "test": res["test"], "p": res["p"],
            "p_a_better": res["p_a_better"], "a_better": _better(res["diff"], higher)}


def _better(diff, higher):
    """Whether a difference a - b favours a, in the metric's direction."""
    return bool(math.isfinite(diff) and diff != 0 and (diff > 0) == higher)


def _group_runs(sel, names):
    return pd.concat([_trials_of(sel, m) for m in names]) if names else sel.iloc[:0]


def _sweep(claim, study, sel):
    """Models_a's trials against models_b's: the share that fail (Fisher's exact test), and the
    spread of the metric over the finished trials (Brown-Forsythe), each with a bootstrap interval."""
    ga, gb = _group_runs(sel, claim.models_a), _group_runs(sel, claim.models_b)
    fa, fb = _failed(ga, study.collapse).to_numpy(), _failed(gb, study.collapse).to_numpy()
    rng = np.random.default_rng(0)
    rows = []
    if len(fa) and len(fb):
        p = st.fisher_exact([[fa.sum(), len(fa) - fa.sum()], [fb.sum(), len(fb) - fb.sum()]]).pvalue
        boot = [rng.choice(fa, len(fa)).mean() - rng.choice(fb, len(fb)).mean() for _ in range(BOOTSTRAP)]
        d = fa.mean() - fb.mean()
        rows.append({"compared": f"{'+'.join(claim.models_a)} vs {'+'.join(claim.models_b)}",
                     "metric": f"share of trials that fail (diverged, failed{_collapse_text(study)}) ↓",
                     "mean_a": fa.mean(), "mean_b": fb.mean(), "n": f"{len(fa)} vs {len(fb)} trials", "effect": d,
                     "effect_low": float(np.percentile(boot, 2.5)), "effect_high": float(np.percentile(boot, 97.5)),
                     "test": "Fisher exact", "p": float(p), "p_a_better": math.nan, "a_better": d < 0})
    va = _finite(ga.loc[ga["status"] == "ok", claim.metric]) if claim.metric in ga else pd.Series(dtype=float)
    vb = _finite(gb.loc[gb["status"] == "ok", claim.metric]) if claim.metric in gb else pd.Series(dtype=float)
    if len(va) >= 3 and len(vb) >= 3:
        iqr = lambda x: float(np.subtract(*np.percentile(x, [75, 25])))  # noqa: E731
        la, lb = np.log(va.to_numpy()), np.log(vb.to_numpy())  # spreads of a positive score compare as ratios
        p = st.levene(la, lb, center="median").pvalue
        ratio = iqr(la) - iqr(lb)
        boot = [iqr(rng.choice(la, len(la))) - iqr(rng.choice(lb, len(lb))) for _ in range(BOOTSTRAP)]
        rows.append({"compared": f"{'+'.join(claim.models_a)} vs {'+'.join(claim.models_b)}",
                     "metric": f"spread of validation {claim.metric} over finished trials (IQR ratio) ↓",
                     "mean_a": math.exp(iqr(la)), "mean_b": math.exp(iqr(lb)), "n": f"{len(va)} vs {len(vb)} trials",
                     "effect": math.exp(ratio), "effect_low": math.exp(np.percentile(boot, 2.5)),
                     "effect_high": math.exp(np.percentile(boot, 97.5)), "test": "Brown-Forsythe (log scale)",
                     "p": float(p), "p_a_better": math.nan, "a_better": ratio < 0})
    return rows


def _collapse_text(study):
    c = study.collapse
    return f", or {c['metric']} < {c['below']}" if c else ""


def _truncation(claim, final):
    """Over the final runs with a truncation sweep: the share whose `metric` moves as the claim says
    (kind monotone: better at every lower threshold; kind interior-minimum: best strictly inside the
    thresholds), against a coin (two-sided binomial test, so that a pattern seen in few runs reads
    as contradicted, not only one seen in most as supported), with its Clopper-Pearson interval."""
    higher = direction(claim.metric) == "↑"
    hits = []
    for _, r in final[final["status"] == "ok"].iterrows():
        path = Path(r["folder"]) / str(r["model"]) / f"seed{r['seed']}" / "truncation.csv"
        try:
            sweep = pd.read_csv(path).sort_values("threshold")
        except (OSError, ValueError, KeyError):
            continue
        if claim.metric not in sweep or len(sweep) < 3:
            continue
        v = sweep[claim.metric].to_numpy(dtype=float)
        if claim.kind == "monotone":  # lower threshold (earlier in the sorted order) scores better
            steps = np.diff(v)
            hits.append(bool(np.all(steps < 0) if higher else np.all(steps > 0)))
        else:
            best = int(np.argmax(v) if higher else np.argmin(v))
            hits.append(0 < best < len(v) - 1)
    if not hits:
        return []
    k, n = sum(hits), len(hits)
    test = st.binomtest(k, n, 0.5)
    ci = test.proportion_ci(method="exact")
    what = ("improves at every lower threshold" if claim.kind == "monotone" else
            "is best at a threshold strictly inside the sweep")
    return [{"compared": f"{n} final runs with a truncation sweep", "metric": f"share where {claim.metric} {what}",
             "mean_a": k / n, "mean_b": 0.5, "n": n, "effect": k / n, "effect_low": ci.low, "effect_high": ci.high,
             "test": "binomial vs 1/2", "p": float(test.pvalue), "p_a_better": math.nan, "a_better": k / n > 0.5}]


def claims_table(study, chosen, sel, final, refs):
    rows = []
    for c in study.claims:
        if c.kind == "paired":
            tested = [_paired(c, chosen, final, refs)]
        elif c.kind == "sweep":
            tested = _sweep(c, study, sel)
        else:
            tested = _truncation(c, final)
        if not tested:
            tested = [{"compared": c.a or "", "metric": c.metric, "n": 0, "p": math.nan, "test": ""}]
        rows += [{"claim": c.id, "text": c.text, "source": c.source, **t} for t in tested]
    df = pd.DataFrame(rows)
    df["p_holm"] = stats.holm(df["p"].to_numpy(dtype=float))
    df["verdict"] = [verdict(p, r) for p, (_, r) in zip(df["p_holm"], df.iterrows())]
    return df


def verdict(p_holm, row):
    if not math.isfinite(p_holm) and not row.get("test"):  # its rows have no finished runs yet
        return UNTESTED
    if p_holm < ALPHA:
        return SUPPORTED if row.get("a_better") else CONTRADICTED
    return UNRESOLVED


def _num(v, digits=3):
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def claims_markdown(df):
    head = ["claim", "compared (a vs b)", "metric", "n", "a", "b", "effect a − b [95 %]", "test", "p (Holm)",
            "P(a better)", "verdict"]
    rows = [[f"**{r['claim']}**: {r['text']} ({r['source']})", r["compared"], r["metric"], _num(r["n"]),
             _num(r.get("mean_a")), _num(r.get("mean_b")),
             f"{_num(r.get('effect'))} [{_num(r.get('effect_low'))}, {_num(r.get('effect_high'))}]", r["test"],
             f"{_num(r['p'])} ({_num(r['p_holm'])})", _num(r.get("p_a_better")), r["verdict"]]
            for _, r in df.iterrows()]
    return markdown_table(head, rows)


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
    atomic_write_text(out / "trials.csv", trials.to_csv(index=False))
    atomic_write_text(out / "best_of_k.csv", bok.to_csv(index=False))

    parts = [f"# Study {study.name}: {study.benchmark}, {study.budget} budget\n",
             "\n".join(f"- {line}" for line in (_phase_line("select", sel, out), _phase_line("final", final, out))), ""]
    if not claims.empty:
        atomic_write_text(out / "claims.csv", claims.to_csv(index=False))
        parts += ["## Claims\n", CLAIMS_HOW, "", claims_markdown(claims), ""]
    parts += ["## Trials (selection phase, scored on validation)\n",
              f"{study.trials} trials per swept model (trial 0: its defaults), seeds {list(study.selection_seeds)}, "
              f"{study.validation_share:g} of train held out for validation.\n",
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
    "credits) against row b (without it), on the metric named, over the same seeds. *effect a − b* is the "
    "mean per-seed difference with its 95 % interval; *P(a better)* the share of seeds on which a is better "
    "in the metric's direction (↑ higher is better, ↓ lower). p is the test's, Holm-corrected over every row "
    "of this table in brackets. *supported*: corrected p < 0.05 with the effect in the claimed direction; "
    "*contradicted*: significant the other way; *not resolved at this budget*: neither, which is not "
    "evidence that the claim is false. A side written `model@target` is the setting chosen for that target "
    "on validation; a `(reference)` side is a model-free score of the same test split.")


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
                opts = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in pick["options"].items())
                rows.append([m, t.name, f"{t.metric} {direction(t.metric)}", f"trial {pick['trial']}", _num(pick["value"]),
                             opts or "the defaults", pick["row"]])
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
            rows.append([m, pick["row"], str(n), f"{_num(mean, 4)} [{_num(lo, 4)}, {_num(hi, 4)}]"])
        parts += [f"### {t.name}: {t.metric} {direction(t.metric)}\n",
                  markdown_table(["model", "row", "seeds", f"test {t.metric}"], rows), ""]
    parts.append("Every row, metric, paired comparison and figure of the final phase: [final/report.md](final/report.md).")
    return "\n".join(parts)
