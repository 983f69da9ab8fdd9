"""Which model, per target: each model's chosen row on the test split, best mean first, with
the groups that paired tests over its final seeds cannot separate (a compact letter display).
"""
import math

import numpy as np
import pandas as pd

from ..core.columns import bounds, direction
from . import stats
from .claims import ALPHA, num, seed_values
from .tables import markdown_table


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
            v = seed_values(final, pick["row"], t.metric) if pick else {}
            if len(v) >= 2:
                values[m] = (pick["row"], v)
        pairs = [(a, b) for i, a in enumerate(values) for b in list(values)[i + 1:]]
        ps, fewest = [], math.inf
        for a, b in pairs:
            va, vb = values[a][1], values[b][1]
            common = sorted(set(va) & set(vb))
            fewest = min(fewest, len(common))
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
                        "pairs_in_family": len([p for p in ps if math.isfinite(p)]),
                        "fewest_common_seeds": fewest if pairs else n})
    return pd.DataFrame(out)


def ranking_markdown(table):
    parts = []
    for (target, metric), part in table.groupby(["target", "metric"], sort=False):
        rows = [[str(r["rank"]), r["model"], r["row"], str(r["seeds"]),
                 f"{num(r['mean'], 4)} [{num(r['low'], 4)}, {num(r['high'], 4)}]", r["group"]]
                for _, r in part.iterrows()]
        parts += [f"### {target}: {metric} {direction(metric)}\n",
                  markdown_table(["rank", "model", "row", "seeds", f"test {metric} [95 % over seeds]", "group"], rows),
                  "", reach_text(part), ""]
    return "\n".join(parts)


def reach_text(part):
    """Whether the design could separate two models at all: Holm's strictest bar over the target's
    pairs against the signed-rank test's smallest p on the fewest seeds two rows share."""
    row = part.iloc[0]
    m, n = int(row["pairs_in_family"]), int(row["fewest_common_seeds"])
    if len(part) < 2:
        return "One model only: nothing to compare."
    if not m:
        return "No two models share two seeds: nothing is compared."
    bar, floor = ALPHA / m, stats.signed_rank_floor(n)
    verdict = ("every pair can be separated" if floor < bar else
               f"a pair sharing only {n} seeds cannot be separated whatever its data, so its shared letter "
               "says nothing")
    return (f"{m} pairs; Holm's strictest bar {ALPHA:g}/{m} = {bar:.2g}; the smallest p of the signed-rank test on "
            f"the fewest seeds two rows share ({n}) is {floor:.2g}: {verdict}.")


RANKING_HOW = (
    "Each model at the setting chosen for the target on validation, scored on the test split over its final "
    "seeds, best mean first. Models sharing a letter are not separated by the paired signed-rank tests "
    "(Holm over the target's pairs): within a letter the answer is \"any of these\".")
