"""Tables as text: markdown and LaTeX, the number format of the results' cells, and the per-model
table (report.aggregate's rows) in each of its forms: the cells with the best mean in bold, the
footnote on capacity, table.csv's flat rows, the ranks, the pairwise tests, every run, and the
compact table the terminal shows. Formatting only: the numbers come from report.py and stats.py.
"""
import math

import numpy as np
import pandas as pd

from ..core.columns import direction
from . import stats

# train_seconds are the steps alone; compile_seconds (torch.compile's time) beside them, blank for
# runs recorded before compilation was counted apart
BUDGET = ["g_steps", "d_steps", "images_seen", "train_seconds", "compile_seconds", "params_g", "params_e", "params_d",
          "flops_per_step", "train_flops"]
NETWORK = {"params_e": "E", "params_g": "G", "params_d": "D"}


def number(v, digits=4):
    """A cell's number: blank for none or NaN, FLOP-sized integers written out, else `digits` significant."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float) and v.is_integer() and 1000 <= abs(v) < 1e9:  # FLOP counts stay in e-notation
        return f"{int(v)}"
    return f"{v:.{digits}g}"


def markdown_table(head, rows):
    return "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n" + "".join(
        "| " + " | ".join(r) + " |\n" for r in rows)


def latex_table(head, rows, note=""):
    esc = lambda s: (s.replace("_", r"\_").replace("±", r"$\pm$").replace("↑", r"$\uparrow$")  # noqa: E731
                     .replace("↓", r"$\downarrow$").replace("†", r"$^\dagger$").replace("×", r"$\times$"))
    lines = [r"\begin{tabular}{l" + "r" * (len(head) - 1) + "}", r"\toprule", " & ".join(map(esc, head)) + r" \\",
             r"\midrule"] + [" & ".join(map(esc, r)) + r" \\" for r in rows] + [r"\bottomrule"]
    for line in note.splitlines():  # the footnote of table.md, as the last rows of the tabular
        lines.append(rf"\multicolumn{{{len(head)}}}{{l}}{{\footnotesize {esc(line)}}} \\")
    lines.append(r"\end{tabular}")
    return "\n".join(lines) + "\n"


# --- the per-model table -----------------------------------------------------------------------

def headers(metrics):
    return ["model", "runs", "ok", "diverged", "failed"] + BUDGET + [f"{c} {direction(c)}" for c in metrics]


def _best(rows, metrics):
    best = {}
    for c in metrics:
        means = [r[c][0] for r in rows if not math.isnan(r[c][0])]
        if means:
            best[c] = max(means) if direction(c) == "↑" else min(means)
    return best


def mark(r):
    """† a capacity outlier, ‡ larger only where the method's published design makes it so."""
    return " †" if r["capacity_outlier"] else " ‡" if r["capacity_flags"] else ""


def outlier_note(rows):
    """The table's footnote: which network of which model is how far off, and why where by design."""
    flagged = [r for r in rows if r["capacity_flags"]]
    if not flagged:
        return ""
    lines = [f"† / ‡: an E, G or D parameter count more than {stats.FACTOR:g}× from the median of the other rows "
             "(rows without that network are left out); † compare its scores with that in mind, ‡ the method's "
             "published design makes it so:"]
    for r in flagged:
        lines.append(f"- {r['model']}{mark(r)}: " + "; ".join(
            f"{NETWORK[c]} {number(r[c], 3)}" + (f" (by design: {why})" if why else "")
            for c, why in r["capacity_flags"]))
    return "\n".join(lines)


def table_cells(rows, metrics, bold):
    """Formatted cells per row: `mean [ci_low, ci_high]`; `bold` wraps the best mean of each metric
    column; † and ‡ mark capacity flags (outlier_note)."""
    best = _best(rows, metrics)
    table = []
    digits = {"train_seconds": 5, "compile_seconds": 5, "flops_per_step": 3, "train_flops": 3}  # of the budget cells
    for r in rows:
        cells = [r["model"] + mark(r), str(r["runs"]), str(r["ok"]),
                 str(r["diverged"]), str(r["failed"])]
        cells += [number(r[c], digits.get(c, 6)) for c in BUDGET]
        for c in metrics:
            mean, _, _, low, high, _ = r[c]
            text = number(mean) + (f" [{number(low)}, {number(high)}]" if not math.isnan(low) else "")
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
                          "capacity_flags": "; ".join(c + (f" (by design: {why})" if why else "")
                                                      for c, why in r["capacity_flags"]),
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
    cols = ["metric", "model_a", "model_b", "mean_a", "mean_b", "test", "n_pairs", "diff", "diff_low", "diff_high",
            "p_a_better", "p", "p_holm", "significant", "better", "note"]
    return pd.DataFrame([{"metric": c, **p} for c, ps in pairs.items() for p in ps], columns=cols)


def pairwise_markdown(pair_df):
    """pairwise.md's table: pairwise.csv with yes / no for the flags and 3 digits for the numbers."""
    return markdown_table(list(pair_df.columns), [
        [("yes" if v else "no") if isinstance(v, (bool, np.bool_)) else number(v, 3) if isinstance(v, float)
         else str(v) for v in row]
        for row in pair_df.itertuples(index=False)])


def runs_markdown(per_run):
    """summary.md's table: one row per run, as summary.csv."""
    def cell(v):
        return number(v) if isinstance(v, float) else ("" if v is pd.NA or v is None else str(v))
    return markdown_table(list(per_run.columns), [[cell(v) for v in row] for row in per_run.itertuples(index=False)])


# What the terminal shows: the first column matching each entry (exact name or prefix), at most 5.
# fd_dinov2_ before fd_: the DINOv2 FD where it runs, on every dataset (sorting alone would put it
# before fd_fashion-mnist but after fd_celeba64).
HEADLINE = ("recon_mse", "probe_acc", "knn_acc", "fid_", "fd_dinov2_", "fd_", "modes_nearest", "modes_3sigma",
            "semantic_recon")


def terminal_table(rows, metrics, out):
    """A compact plain-text table for the console: model, finished/all runs, and the headline
    metrics as mean [95 % interval]. The full table is in the files."""
    cols = []
    for h in HEADLINE:
        match = next((c for c in metrics if c not in cols and (c == h or (h.endswith("_") and c.startswith(h)))), None)
        if match and match not in cols and len(cols) < 5:
            cols.append(match)
    lines = [["model", "ok/runs"] + [f"{c} {direction(c)}" for c in cols]]
    for r in rows:
        cells = [r["model"] + mark(r), f"{r['ok']}/{r['runs']}"]
        for c in cols:
            mean, _, _, low, high, _ = r[c]
            cells.append(number(mean, 4) + (f" [{number(low, 3)}, {number(high, 3)}]" if not math.isnan(low) else ""))
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
    return f"{text}\n\nmean [95 % interval over seeds]; every column, the protocol and the figures: {out / 'report.md'}"
