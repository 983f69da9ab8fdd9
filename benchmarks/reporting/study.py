"""The report of a study (`sweep`): what the trials say about each model's sensitivity to its
hyperparameters (trials.py), which settings were chosen, each claim of the source texts with its
test (claims.py) and the per-target ranking (ranking.py).

Reads only what the phases wrote: OUT/select and OUT/final (ordinary results folders, each with
its own report.md) and OUT/selection.json. Writes OUT/study.md, OUT/trials.csv, OUT/claims.csv,
OUT/ranking.csv, OUT/best_of_k.csv and OUT/plots/.
"""
import json
from pathlib import Path

import pandas as pd

from ..core.columns import bounds, direction
from ..core.errors import UserError
from ..core.io import atomic_write_text
from . import stats
from .claims import CLAIMS_HOW, claims_markdown, claims_table, num, seed_values
from .folders import collect, read_references
from .ranking import RANKING_HOW, ranking_markdown, ranking_table
from .tables import markdown_table
from .trials import best_of_k_figure, best_of_k_table, collapsed, trials_table


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
    parts += ["## Trials (selection phase, scored on validation)\n", _trials_how(study),
              markdown_table(list(trials.columns), [[num(v) for v in r] for r in trials.itertuples(index=False)]), ""]
    parts += [f"![{name}]({name})\n\n{text}\n" for name, text in figures]
    parts += ["## Chosen settings\n", _chosen_markdown(study, chosen), ""]
    if len(final):
        parts += [_final_markdown(study, chosen, final)]
    text = "\n".join(parts)
    atomic_write_text(out / "study.md", text)
    return text


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


def _trials_how(study):
    """How the selection phase ran, in words (a study without a sweep, trials: 1, says so)."""
    held = (f"{study.validation_share:g} of train held out for validation, generated samples scored against "
            "it.")
    if study.trials == 1:
        return (f"No sweep: each model runs its defaults (trial 0) on selection seed "
                f"{', '.join(map(str, study.selection_seeds))}; {held}\n")
    confirm = (f"; per model and target the {study.confirm_top} best also ran on seeds "
               f"{list(study.selection_seeds[1:])}, and the setting chosen has the best median over the "
               f"{len(study.selection_seeds)} seeds" if len(study.selection_seeds) > 1 and study.confirm_top else
               "; the setting chosen has the best score on it")
    return (f"{study.trials} trials per swept model (trial 0: its defaults), screened on seed "
            f"{study.selection_seeds[0]}{confirm}; {held} The columns below are over the screen; *_defaults* is "
            "trial 0, the others are over the random trials.\n")


def _chosen_markdown(study, chosen):
    rows = []
    for m in study.models:
        for t in study.targets:
            pick = (chosen.get(m) or {}).get(t.name)
            if pick:
                opts = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in pick["options"].items())
                rows.append([m, t.name, f"{t.metric} {direction(t.metric)}", f"trial {pick['trial']}",
                             num(pick["value"]), opts or "the defaults", pick["row"]])
            else:
                rows.append([m, t.name, t.metric, "none finished", "–", "–", "–"])
    return markdown_table(["model", "target", "metric", "chosen", "validation score", "options", "final row"], rows)


def _final_markdown(study, chosen, final):
    """Per target, each model's chosen row on the test split: mean [95 % interval over seeds]."""
    parts = ["## Final phase (chosen settings rerun on the test split)\n"]
    c = study.collapse or {}
    collapse_rule = (f" ({c['metric']} < {c['relative']:g} × the row's best seed)" if "relative" in c
                     else f" ({c['metric']} < {c['below']:g})" if "below" in c else "")
    for t in study.targets:
        rows = []
        for m in study.models:
            pick = (chosen.get(m) or {}).get(t.name)
            if not pick:
                continue
            v = list(seed_values(final, pick["row"], t.metric).values())
            mean, _, n, lo, hi = stats.t_interval(v, bounds=bounds(t.metric))  # inside the metric's range
            runs = final[final["model"] == pick["row"]]
            broke = int((runs["status"] != "ok").sum())
            fell = int(collapsed(runs, study.collapse).sum()) if len(runs) else 0
            # A chosen setting should not blow up: more than one seed in ten diverged, crashed or
            # collapsed (against the row's own best seed) is flagged. The two counts stay apart, as
            # a row chosen for its encoder may train a generator that collapses while its features
            # do not move.
            flag = " ⚠ fragile" if (broke + fell) * 10 > len(runs) else ""
            rows.append([m, pick["row"], str(n), f"{num(mean, 4)} [{num(lo, 4)}, {num(hi, 4)}]",
                         f"{broke} of {len(runs)}", f"{fell} of {len(runs)}{flag}"])
        parts += [f"### {t.name}: {t.metric} {direction(t.metric)}\n",
                  markdown_table(["model", "row", "seeds", f"test {t.metric}", "seeds diverged or crashed",
                                  f"seeds collapsed{collapse_rule}"], rows),
                  ""]
    parts.append("Every row, metric, paired comparison and figure of the final phase: "
                 "[final/report.md](final/report.md).")
    return "\n".join(parts)
