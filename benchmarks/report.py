"""Tables and figures from results folders: per run (summary.*), per model with the mean and a
95 % t-interval over seeds (table.*), every two models compared per metric (pairwise.*), figures
under plots/ and report.md, which puts them together. The statistics are in stats.py.

Reads only what runs wrote (metrics.json, config.json, benchmark.json), so it works on any
folder, finished or partial, and on several folders at once (shards of one benchmark).
"""
import datetime
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import plots, stats
from .errors import UserError
from .io import atomic_write_text

# flops_per_step and train_flops are written by newer runs only; older folders get blank cells.
RUN_COLUMNS = ["model", "seed", "status", "g_steps", "d_steps", "images_seen", "train_seconds",
               "params_g", "params_e", "params_d", "flops_per_step", "train_flops", "recon_mse", "probe_acc"]
BUDGET = ["g_steps", "d_steps", "images_seen", "train_seconds", "params_g", "params_e", "params_d",
          "flops_per_step", "train_flops"]
NOT_METRICS = set(BUDGET) | {"model", "seed", "status", "error", "metric_seconds", "wall_seconds", "protocol",
                             "compile_seconds", "compiled",
                             "diverged_at", "diverged_on", "folder", "drawn"}
# Which way is better, by column name or prefix. A metric column not listed gets no arrow and no bold.
HIGHER = ("probe_", "knn_", "semantic_recon", "cs_", "is_", "modes_", "high_quality")
LOWER = ("recon_mse", "latent_cycle_mse", "fd_", "fid_", "kid_", "kl_modes")


def direction(col):
    if col.startswith(HIGHER) or col in HIGHER:
        return "↑"
    if col.startswith(LOWER) or col in LOWER:
        return "↓"
    return None


def collect(dirs):
    rows = []
    for d in dirs:
        for path in sorted(Path(d).glob("*/seed*/metrics.json")):
            try:
                row = json.loads(path.read_text())
            except ValueError:
                row = {"model": path.parent.parent.name, "seed": path.parent.name[4:], "status": "unreadable"}
            rows.append({**row, "folder": str(d)})
    df = pd.DataFrame(rows)
    for c in RUN_COLUMNS:
        if c not in df:
            df[c] = pd.NA
    return df


def metric_columns(df):
    cols = [c for c in df.columns if c not in NOT_METRICS and direction(c)]
    known = [c for c in RUN_COLUMNS if c in cols]
    return known + sorted(c for c in cols if c not in known)


def aggregate(df):
    """One row per model: run counts, mean budget spent, (mean, std, n, ci_low, ci_high, rank) per
    metric over ok runs and whether its capacity is an outlier; and the pairwise tests per metric."""
    metrics, groups = metric_columns(df), dict(list(df.groupby("model", sort=True)))
    values = {c: {m: pd.to_numeric(g.loc[g["status"] == "ok", c], errors="coerce").dropna().to_numpy(float)
                  for m, g in groups.items()} for c in metrics}
    pairs = {c: stats.pairwise(values[c], direction(c)) for c in metrics}
    ranks = {c: stats.ranks(values[c], pairs[c]) for c in metrics}
    out = []
    for name, g in groups.items():
        row = {"model": name, "runs": len(g), "ok": int((g["status"] == "ok").sum()),
               "diverged": int((g["status"] == "diverged").sum()),
               "failed": int((~g["status"].isin(["ok", "diverged"])).sum())}
        for c in BUDGET:
            vals = pd.to_numeric(g[c], errors="coerce").dropna()
            row[c] = float(vals.mean()) if len(vals) else math.nan
        for c in metrics:
            row[c] = (*stats.t_interval(values[c][name]), ranks[c][name])
        out.append(row)
    outliers = stats.capacity_outliers({r["model"]: r for r in out})
    for r in out:
        r["capacity_outlier"] = r["model"] in outliers
    return out, metrics, pairs


def _num(v, digits=4):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float) and v.is_integer() and 1000 <= abs(v) < 1e9:  # FLOP counts stay in e-notation
        return f"{int(v)}"
    return f"{v:.{digits}g}"


def _best(rows, metrics):
    best = {}
    for c in metrics:
        means = [r[c][0] for r in rows if not math.isnan(r[c][0])]
        if means:
            best[c] = max(means) if direction(c) == "↑" else min(means)
    return best


OUTLIER_NOTE = (f"† E or G parameter count more than {stats.FACTOR:g}× from the median of the other rows "
                f"(rows without that network are left out); compare its scores with that in mind.")


def _cells(rows, metrics, bold):
    """Formatted cells per row: `mean [ci_low, ci_high]`; `bold` wraps the best mean of each metric
    column and † marks a capacity outlier."""
    best = _best(rows, metrics)
    table = []
    for r in rows:
        cells = [r["model"] + (" †" if r["capacity_outlier"] else ""), str(r["runs"]), str(r["ok"]),
                 str(r["diverged"]), str(r["failed"])]
        cells += [_num(r[c], {"train_seconds": 5, "flops_per_step": 3, "train_flops": 3}.get(c, 6)) for c in BUDGET]
        for c in metrics:
            mean, _, _, low, high, _ = r[c]
            text = _num(mean) + (f" [{_num(low)}, {_num(high)}]" if not math.isnan(low) else "")
            cells.append(bold(text) if text and c in best and mean == best[c] else text)
        table.append(cells)
    return table


def n_text(rows, metrics):
    """The seed counts behind the intervals: "n = 3", or "n = 1 to 3 by model and metric"."""
    ns = sorted({r[c][2] for r in rows for c in metrics if r[c][2] > 0})
    if not ns:
        return "n = 0"
    return f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]} to {ns[-1]} by model and metric"


def flat_table(rows, metrics):
    """table.csv: one row per model, every number unformatted; ranks as integers, blank when none."""
    flat = pd.DataFrame([{**{k: r[k] for k in ("model", "runs", "ok", "diverged", "failed", *BUDGET)},
                          "capacity_outlier": r["capacity_outlier"],
                          **{f"{c}_{s}": r[c][i] for c in metrics
                             for i, s in enumerate(("mean", "std", "n", "ci_low", "ci_high", "rank"))}}
                         for r in rows])
    for c in metrics:
        flat[f"{c}_rank"] = flat[f"{c}_rank"].astype("Int64")
    return flat


def ranks_table(rows, metrics):
    return markdown_table(["model"] + [f"{c} {direction(c)}" for c in metrics],
                          [[r["model"]] + ["" if r[c][5] is None else str(r[c][5]) for c in metrics] for r in rows])


def pairwise_table(pairs):
    """pairwise.csv as a DataFrame: one row per metric and pair of models."""
    cols = ["metric", "model_a", "model_b", "mean_a", "mean_b", "diff", "p", "p_holm", "significant", "better", "note"]
    return pd.DataFrame([{"metric": c, **p} for c, ps in pairs.items() for p in ps], columns=cols)


def headers(metrics):
    return ["model", "runs", "ok", "diverged", "failed"] + BUDGET + [f"{c} {direction(c)}" for c in metrics]


def markdown_table(head, rows):
    return "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n" + "".join(
        "| " + " | ".join(r) + " |\n" for r in rows)


def latex_table(head, rows):
    esc = lambda s: (s.replace("_", r"\_").replace("±", r"$\pm$").replace("↑", r"$\uparrow$")  # noqa: E731
                     .replace("↓", r"$\downarrow$").replace("†", r"$^\dagger$").replace("×", r"$\times$"))
    lines = [r"\begin{tabular}{l" + "r" * (len(head) - 1) + "}", r"\toprule", " & ".join(map(esc, head)) + r" \\",
             r"\midrule"] + [" & ".join(map(esc, r)) + r" \\" for r in rows] + [r"\bottomrule"]
    if any("†" in r[0] for r in rows):  # the footnote of table.md, as a last row of the tabular
        lines.append(rf"\multicolumn{{{len(head)}}}{{l}}{{\footnotesize {esc(OUTLIER_NOTE)}}} \\")
    lines.append(r"\end{tabular}")
    return "\n".join(lines) + "\n"


def protocol(dirs, df):
    """What every number in the table depends on, as markdown bullet lines."""
    lines = []
    for d in dirs:
        bench = Path(d) / "benchmark.json"
        try:
            c = json.loads(bench.read_text())["config"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            if bench.exists():
                lines.append(f"- {bench} is unreadable ({type(e).__name__}): the next `run` in this folder records "
                             "it again; the runs' own config.json files below still say what they ran")
            continue
        recs = []
        for path in sorted(Path(d).glob("*/seed*/config.json")):
            try:
                recs.append(json.loads(path.read_text()))
            except ValueError:
                continue  # an unreadable record: its run shows as unreadable in the tables
        meta = recs[0].get("dataset_meta", {}) if recs else {}
        lines += [
            f"- benchmark `{c['benchmark']}`, budget `{c['budget']}` ({d})",
            f"- dataset `{c['dataset']}` {json.dumps(c['dataset_options']) if c['dataset_options'] else ''}: "
            f"split sizes {json.dumps(meta.get('split_sizes'))}, size {meta.get('size')} px"
            + (f", crop {meta['crop']} (box {meta.get('crop_box')}, {meta.get('resize_filter')})" if meta.get("crop") else "")
            + (f", source hash {json.dumps(meta['source_hash'])}" if meta.get("source_hash") else ""),
            f"- training: {c['train']['steps']} G/E steps at batch {c['train']['batch_size']}, "
            f"arch `{c['arch'].get('style', 'shared')}` z_dim {c['arch']['z_dim']} width {c['arch']['width']}; "
            f"seeds {sorted(set(int(s) for s in df['seed'].dropna()))}",
            f"- evaluation: {json.dumps(c['eval'])}",
        ]
        # Every distinct value over the runs, not the first run's: a folder may be filled by
        # several commands (seed subsets, shards, resumes) on several machines.
        if recs:
            # A run's first start and every later one (a resume, an evaluation again) count.
            starts = [s for r in recs for s in [r, *(r.get("resumed") or [])]]
            versions = [dict(s.get("versions") or {}) for s in starts]
            commits = sorted({str(v.pop("git_commit", None)) for v in versions})
            started = sorted({s.get("started") or "?" for s in starts})
            again = sum(bool(r.get("resumed")) for r in recs)
            if again:
                lines.append(f"- resumed or evaluated again: {again} of {len(recs)} runs (each run's config.json "
                             "lists its later starts under `resumed`)")
            lines += [f"- device: {'; '.join(sorted({json.dumps(s.get('runtime'), sort_keys=True) for s in starts}))}",
                      f"- versions: {'; '.join(sorted({json.dumps(v, sort_keys=True) for v in versions}))}",
                      f"- code (git commit): {', '.join(commits)}",
                      f"- started: {started[0]} to {started[-1]}",
                      *[f"- command: `{cmd}`" for cmd in sorted({s.get('command') or '?' for s in starts})]]
    notes = {}
    for p in df.get("protocol", pd.Series(dtype=object)).dropna():
        if isinstance(p, dict):
            notes.update(p)
    lines += [f"- `{k}`: {v}" for k, v in sorted(notes.items())]
    return "\n".join(lines)


def locked_report(out_dir, extra_dirs=(), figures=True):
    """write_report under the folder's report lock: shards that finish together (a shared
    folder) take turns; a writer still busy after a minute is reported, not waited for."""
    from .lock import FolderLock

    with FolderLock(out_dir, "Results folder").acquire(wait=60):
        return write_report(out_dir, extra_dirs, figures=figures)


def write_report(out_dir, extra_dirs=(), figures=True):
    """Write summary.{csv,md} (per run), table.{md,csv,tex} (per model), pairwise.{csv,md}, plots/ and report.md.
    figures=False (--no-figures) writes the tables only, in well under a second, and removes the
    folder's old figures, which would no longer match its tables; `report DIR` draws them again."""
    dirs = [Path(out_dir), *map(Path, extra_dirs)]
    for d in dirs:
        if not d.is_dir():
            raise UserError(f"Results folder {d} does not exist; `python -m benchmarks run` writes one.")
    df = collect(dirs)
    if df.empty:
        raise UserError(f"{', '.join(map(str, dirs))} hold(s) no runs (no <model>/seed<k>/metrics.json); nothing to report.")
    df = df.sort_values(["model", "seed"], key=lambda s: s.astype(str), kind="stable")
    out = Path(out_dir)
    metrics = metric_columns(df)
    per_run = df[RUN_COLUMNS + [c for c in metrics if c not in RUN_COLUMNS]]
    atomic_write_text(out / "summary.csv", per_run.to_csv(index=False))

    rows, metrics, pairs = aggregate(df)
    head, n = headers(metrics), n_text(rows, metrics)
    note = f"\n{OUTLIER_NOTE}\n" if any(r["capacity_outlier"] for r in rows) else ""
    atomic_write_text(out / "table.csv", flat_table(rows, metrics).to_csv(index=False))
    atomic_write_text(out / "table.tex", latex_table(head, _cells(rows, metrics, lambda t: rf"\textbf{{{t}}}")))
    md_table = markdown_table(head, _cells(rows, metrics, lambda t: f"**{t}**")) + note
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    how = (f"Each cell: mean [95 % t-interval over seeds, {n}], i.e. mean ± t(0.975, n−1)·s/√n over the seeds "
           f"that finished (`ok`); a single seed gets no interval. Diverged and failed runs are counted, not averaged. "
           f"Best mean per metric in bold; ↑ higher is better, ↓ lower is better. Budget columns are means over "
           f"all runs. Written {when} by `python -m benchmarks report`.")
    proto = "\n".join(filter(None, [protocol(dirs, df), (
        f"- statistics: mean and 95 % t-interval over seeds ({n}); every two models compared per metric with "
        f"Welch's t-test, Holm-corrected over the pairs of that metric, significant at p_holm < {stats.ALPHA:g}; "
        f"not testable when either model has n < 2 or both have zero variance over seeds")]))
    text = f"# {out.name}\n\n{how}\n\n{md_table}\n## Protocol\n\n{proto}\n"
    atomic_write_text(out / "table.md", text)
    pair_df = pairwise_table(pairs)
    atomic_write_text(out / "pairwise.csv", pair_df.to_csv(index=False))
    pair_md = markdown_table(list(pair_df.columns), [
        [("yes" if v else "no") if isinstance(v, (bool, np.bool_)) else _num(v, 3) if isinstance(v, float) else str(v)
         for v in row]
        for row in pair_df.itertuples(index=False)])
    atomic_write_text(out / "pairwise.md", f"# {out.name}: every two models per metric\n\n{READ_PAIRWISE}\n\n{pair_md}")
    per_run_md = markdown_table(list(per_run.columns), [[_num(v) if isinstance(v, float) else ("" if v is pd.NA or v is None else str(v))
                                                          for v in row] for row in per_run.itertuples(index=False)])
    atomic_write_text(out / "summary.md", f"# {out.name}: every run\n\n{per_run_md}")
    figures = plots.all_figures(df, metrics, direction, out / "plots") if figures else None
    for stale in set((out / "plots").glob("*.png")) - {out / "plots" / f for f, _ in figures or ()}:
        stale.unlink()  # a figure this folder no longer supports (a removed model or metric)
    atomic_write_text(out / "report.md", report_markdown(out, how, md_table, ranks_table(rows, metrics), proto,
                                                         figures, df))
    return terminal_table(rows, metrics, out)


# What the terminal shows: the first column matching each entry (exact name or prefix), at most 5.
HEADLINE = ("recon_mse", "probe_acc", "knn_acc", "fid_", "fd_", "modes_nearest", "modes_3sigma", "semantic_recon")


def terminal_table(rows, metrics, out):
    """A compact plain-text table for the console: model, finished/all runs, and the headline
    metrics as mean [95 % interval]. The full table is in the files."""
    cols = []
    for h in HEADLINE:
        match = next((c for c in metrics if c == h or (h.endswith("_") and c.startswith(h))), None)
        if match and match not in cols and len(cols) < 5:
            cols.append(match)
    lines = [["model", "ok/runs"] + [f"{c} {direction(c)}" for c in cols]]
    for r in rows:
        cells = [r["model"] + (" †" if r["capacity_outlier"] else ""), f"{r['ok']}/{r['runs']}"]
        for c in cols:
            mean, _, _, low, high, _ = r[c]
            cells.append(_num(mean, 4) + (f" [{_num(low, 3)}, {_num(high, 3)}]" if not math.isnan(low) else ""))
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
    return f"{text}\n\nmean [95 % interval over seeds]; every column, the protocol and the figures: {out / 'report.md'}"


READ_PAIRWISE = (
    "Every two models are compared on every metric with Welch's t-test (unequal variances) on their finished "
    "seeds; the p-values of one metric are Holm-corrected over all its pairs. `significant` means p_holm < 0.05, "
    "and `better` then names the winner in the metric's direction (`diff` = mean_a − mean_b). So a model beats "
    "BiGAN-QP on a metric only where the row of the two names it under `better`; an empty `better` means these "
    "seeds cannot tell the two apart, whatever the means say. Pairs where either model has fewer than 2 finished "
    "seeds, or both have the same value on every seed (zero variance: nothing to measure a difference against), "
    "are not testable: p is blank, `note` says why, and they are never significant.")


def report_markdown(out, how, md_table, ranks_md, proto, figures, df):
    """The results folder as one page: the table, the ranks, every figure with a sentence on it, the protocol."""
    counts = df["status"].value_counts().to_dict()
    runs = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    parts = [f"# {out.name}\n", f"{len(df)} runs ({runs}) of {df['model'].nunique()} models. {how}\n",
             "## Table\n", md_table, "Per-run numbers: [summary.md](summary.md); also [table.csv](table.csv) and "
             "[table.tex](table.tex).\n", "## Ranks and pairwise comparisons\n",
             "Rank per metric = 1 + the number of models significantly better (below), so models the seeds cannot "
             "separate share a rank; blank where a model has fewer than 2 finished seeds. " + READ_PAIRWISE
             + " Every pair: [pairwise.md](pairwise.md), [pairwise.csv](pairwise.csv).\n", ranks_md, "## Figures\n"]
    if figures is None:
        parts.append(f"Not drawn (`--no-figures`); `python -m benchmarks report {out}` draws them.\n")
    for name, caption in figures or ():
        parts.append(f"### {Path(name).stem}\n\n{caption}\n\n![{Path(name).stem}](plots/{name})\n")
    parts += ["## Protocol\n", proto + "\n"]
    return "\n".join(parts)
