"""Tables and figures from results folders: per run (summary.*), per model with the mean and a
95 % t-interval over seeds (table.*), every two models compared per metric (pairwise.*), figures
under plots/ and report.md, which puts them together. The statistics are in stats.py, the
tables' formatting in tables.py.

Reads only what runs wrote (metrics.json, config.json, benchmark.json), so it works on any
folder, finished or partial, and on several folders at once (shards of one benchmark).
"""
import datetime
import json
import math
from pathlib import Path

import pandas as pd

from ..core.columns import bounds, direction  # trials.py reads direction from here too
from ..core.errors import UserError
from ..core.io import atomic_write_text
from . import plots, stats
from .folders import (MANIFEST, RUN_COLUMNS, check_mergeable, check_output, collect, dataset_meta, manifest,
                      protocol, read_manifest, read_references)
from .tables import (BUDGET, flat_table, headers, latex_table, markdown_table, n_text, number, outlier_note,
                     pairwise_markdown, pairwise_table, ranks_table, runs_markdown, table_cells, terminal_table)

REPORT_FILES = ("summary.csv", "summary.md", "table.csv", "table.md", "table.tex", "pairwise.csv", "pairwise.md",
                "report.md")
NOT_METRICS = set(BUDGET) | {"model", "seed", "status", "error", "metric_seconds", "wall_seconds", "protocol",
                             "compiled", "train_seconds_exclude_compile",
                             "diverged_at", "diverged_on", "folder", "drawn"}


def metric_columns(df):
    cols = [c for c in df.columns if c not in NOT_METRICS and direction(c)]
    known = [c for c in RUN_COLUMNS if c in cols]
    return known + sorted(c for c in cols if c not in known)


def by_design(names):
    """{model: {column: reason}}: what each registered model declares larger by its published design
    (models.base.BidirectionalGAN.capacity_by_design); a model report cannot import has none."""
    import models

    known = set(models.available())
    return {m: dict(getattr(models.get(m), "capacity_by_design", {}) or {}) for m in names if m in known}


def aggregate(df, n_modes=None):
    """One row per model: run counts, mean budget spent, (mean, std, n, ci_low, ci_high, rank) per
    metric over ok runs, and its capacity flags; and the pairwise tests per metric."""
    metrics, groups = metric_columns(df), dict(list(df.groupby("model", sort=True)))
    values = {}
    for c in metrics:
        values[c] = {}
        for m, g in groups.items():
            ok = g[g["status"] == "ok"]
            v = pd.to_numeric(ok[c], errors="coerce")
            values[c][m] = {str(s): float(x) for s, x in zip(ok["seed"], v) if pd.notna(x)}
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
            row[c] = (*stats.t_interval(list(values[c][name].values()), bounds=bounds(c, n_modes)), ranks[c][name])
        out.append(row)
    design = by_design(groups)
    flags = stats.capacity_outliers({r["model"]: r for r in out})
    for r in out:
        cols = flags.get(r["model"], [])
        reasons = design.get(r["model"], {})
        r["capacity_flags"] = [(c, reasons.get(c, "")) for c in cols]
        r["capacity_outlier"] = any(not why for _, why in r["capacity_flags"])  # not explained by its design
    return out, metrics, pairs


def locked_report(out_dir, dirs=None, figures=True, reuse=False):
    """write_report of `dirs` (default: out_dir itself) into out_dir, under the folder's report
    lock: shards that finish together (a shared folder) take turns; a writer still busy after a
    minute is reported, not waited for. Everything is checked before the folder is made.
    reuse=True (the report at the end of `run` and of each `sweep` phase) leaves a report whose
    key (report_key) is unchanged as it is: a resume that finds every run finished would otherwise
    spend minutes rewriting the same tables (a study's selection phase: 324 runs)."""
    from ..core.lock import FolderLock

    out = Path(out_dir)
    inputs = check_mergeable(dirs or [out])
    check_output(out, inputs)
    if not any(next(d.glob("*/seed*/metrics.json"), None) for d in inputs):
        raise UserError(f"{', '.join(map(str, inputs))} hold(s) no runs (no <model>/seed<k>/metrics.json); "
                        "nothing to report.")
    out.mkdir(parents=True, exist_ok=True)
    with FolderLock(out, "Results folder").acquire(wait=60):
        key = report_key(out, inputs, figures)
        done, files = read_manifest(out), manifest(out)
        if reuse and done.get("key") == key and files and all((out / f).is_file() for f in files):
            return (f"{done.get('terminal', '')}\n(report unchanged since it was written: no run, setting or code "
                    "it reads changed)")
        terminal = write_report(out, inputs, figures=figures)
        stamp_manifest(out, key, terminal)
        return terminal


def report_key(out, dirs, figures):
    """What a folder's report depends on, as one hash: every file of the runs it reads (path,
    size, modification time; a resumed or added run changes it), the figures flag, the code that
    writes the report and the models it asks (their modules, plugins included), and the versions
    of the libraries that compute it."""
    import hashlib
    import importlib.metadata
    import inspect
    import sys

    import models

    h = hashlib.sha256(json.dumps([str(Path(out).resolve()), bool(figures)]).encode())
    for d in dirs:
        for p in sorted(q for q in Path(d).rglob("*") if q.is_file()):
            rel = p.relative_to(d)
            if len(rel.parts) == 1 and (rel.name.startswith(".") or rel.name in REPORT_FILES):
                continue  # the report's own files and the folder's lock
            if (len(rel.parts) == 2 and rel.parts[0] == "plots") or rel.name.startswith("."):
                continue  # the report's figures; a run's lock file
            st = p.stat()
            h.update(f"{d}/{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    sources = {Path(sys.modules[pkg].__file__).parent for pkg in ("benchmarks", "models", "metrics")
               if getattr(sys.modules.get(pkg), "__file__", None)}
    files = {f for root in sources for f in root.rglob("*.py")}
    files |= {Path(inspect.getfile(models.get(m))) for m in models.available()}
    for f in sorted(files):
        h.update(str(f).encode() + b"\0" + f.read_bytes())
    for lib in ("numpy", "pandas", "scipy", "statsmodels", "matplotlib"):
        try:
            h.update(f"{lib}={importlib.metadata.version(lib)}".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{lib}=none".encode())
    return h.hexdigest()


def write_report(out_dir, dirs, figures=True):
    """Write summary.{csv,md} (per run), table.{md,csv,tex} (per model), pairwise.{csv,md}, plots/ and report.md
    for the runs in `dirs` (checked with check_mergeable). figures=False (--no-figures) writes the tables
    only, in well under a second, and removes the figures it drew before, which would no longer match
    its tables; `report DIR` draws them again."""
    df = collect(dirs)
    if df.empty:
        raise UserError(f"{', '.join(map(str, dirs))} hold(s) no runs (no <model>/seed<k>/metrics.json); nothing to "
                        "report.")
    df = df.sort_values(["model", "seed"], key=lambda s: s.astype(str), kind="stable")
    out = Path(out_dir)
    metrics = metric_columns(df)
    per_run = df[RUN_COLUMNS + [c for c in metrics if c not in RUN_COLUMNS]]
    atomic_write_text(out / "summary.csv", per_run.to_csv(index=False))

    meta = dataset_meta(dirs)
    rows, metrics, pairs = aggregate(df, n_modes=len(meta.get("centres") or ()) or None)
    head, n = headers(metrics), n_text(rows, metrics)
    note = outlier_note(rows)
    atomic_write_text(out / "table.csv", flat_table(rows, metrics).to_csv(index=False))
    atomic_write_text(out / "table.tex", latex_table(head, table_cells(rows, metrics, lambda t: rf"\textbf{{{t}}}"),
                                                     note))
    md_table = markdown_table(head, table_cells(rows, metrics, lambda t: f"**{t}**")) + (f"\n{note}\n" if note else "")
    refs = references_table(dirs)
    md_table += f"\n{refs}" if refs else ""
    how, proto = how_text(n), protocol_text(dirs, df, n)
    atomic_write_text(out / "table.md", f"# {out.name}\n\n{how}\n\n{md_table}\n## Protocol\n\n{proto}\n")
    pair_df = pairwise_table(pairs)
    atomic_write_text(out / "pairwise.csv", pair_df.to_csv(index=False))
    atomic_write_text(out / "pairwise.md", f"# {out.name}: every two models per metric\n\n{READ_PAIRWISE}\n\n"
                                           f"{pairwise_markdown(pair_df)}")
    atomic_write_text(out / "summary.md", f"# {out.name}: every run\n\n{runs_markdown(per_run)}")
    figures = plots.all_figures(df, metrics, direction, out / "plots") if figures else None
    write_manifest(out, figures)
    atomic_write_text(out / "report.md", report_markdown(out, how, md_table, ranks_table(rows, metrics), proto,
                                                         figures, df))
    return terminal_table(rows, metrics, out)


def write_manifest(out, figures):
    """The folder's manifest: the files report wrote, the figures under plots/ among them ([(file,
    caption)], None when not drawn); a figure of an earlier report that is not among them is removed."""
    drawn = {f"plots/{f}" for f, _ in figures or ()}
    for stale in manifest(out) - drawn:
        if stale.startswith("plots/"):  # a figure of ours this folder no longer supports (a removed model or metric)
            (out / stale).unlink(missing_ok=True)
    written = [*REPORT_FILES, *sorted(drawn)]
    atomic_write_text(out / MANIFEST, json.dumps({"files": written}, indent=1) + "\n")


def stamp_manifest(out, key, terminal):
    """The finished report's key and terminal table, kept beside its file list: written last, so a
    report cut off half-way is never taken for a finished one."""
    done = read_manifest(out)
    atomic_write_text(out / MANIFEST, json.dumps({**done, "key": key, "terminal": terminal}, indent=1) + "\n")


def how_text(n):
    """How to read a cell of the table, with the seed counts `n` (n_text) and when it was written."""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"Each cell: mean [95 % t-interval over seeds, {n}], i.e. mean ± t(0.975, n−1)·s/√n over the seeds "
            f"that finished (`ok`), clipped to the metric's range (which keeps its coverage); a single seed gets no "
            f"interval. The interval covers seed variation only: the test set is fixed, so a model that no seed "
            f"changes (pca) has a zero-width one, and the model-free references carry their own test-set interval "
            f"(protocol). Diverged and failed runs are counted, not averaged. "
            f"Best mean per metric in bold; ↑ higher is better, ↓ lower is better. Budget columns are means over "
            f"all runs. Written {when} by `python -m benchmarks report`.")


def protocol_text(dirs, df, n):
    """The protocol section: the runs' protocol (folders.protocol), the statistics, and the unreadable records."""
    return "\n".join(filter(None, [protocol(dirs, df), (
        f"- statistics: mean and 95 % t-interval over seeds ({n}), clipped to the metric's range; every two models "
        f"compared per metric paired by seed (paired t-test on their common seeds, Wilcoxon signed-rank from "
        f"{stats.SIGNED_RANK_MIN} common seeds; Welch's t-test only when fewer than 2 seeds are common), "
        f"Holm-corrected over the pairs of that metric, significant at p_holm < {stats.ALPHA:g}; each with the "
        f"mean difference, its 95 % interval and P(A better than B) over seeds (pairwise.csv)"),
        skipped_text(df)]))


# The rows of the references table: label, then {metric column: key in references.json's values}.
REFERENCE_ROWS = (
    ("raw input (linear probe, kNN-20)", {"probe_acc": "raw_probe_acc", "knn_acc": "raw_knn_acc"}),
    ("majority class", {"probe_acc": "majority_acc", "knn_acc": "majority_acc"}),
    ("random other test image (chance)", {"recon_mse": "chance_recon_mse", "semantic_recon": "chance_semantic_recon",
                                          "recon_lpips_vgg16": "chance_recon_lpips_vgg16"}),
    ("train mean image (floor)", {"recon_mse": "mean_image_recon_mse",
                                  "recon_lpips_vgg16": "mean_image_recon_lpips_vgg16"}),
)
# The references of columns named by a count or a space, found by their key's prefix in
# references.json: the column is the key without "raw_" / "real_" (raw_probe_acc_10 -> probe_acc_10).
RAW_LABELS, CEILING = "raw_probe_acc_", "real_"
CEILING_ROW = "held-out real sample (ceiling)"


def reference_rows(values):
    """REFERENCE_ROWS with the raw input's label-efficiency probes and the real-data ceiling of
    precision, recall, density and coverage that `values` (references.json) holds."""
    rows = [(label, {**m, **({k[len("raw_"):]: k for k in values if k.startswith(RAW_LABELS)}
                             if m.get("probe_acc") == "raw_probe_acc" else {})}) for label, m in REFERENCE_ROWS]
    return rows + [(CEILING_ROW, {k[len(CEILING):]: k for k in values if k.startswith(CEILING)})]


def references_table(dirs):
    """The model-free references of the folder's references.json as a small table in the models'
    columns, each value with its 95 % bootstrap interval over test items where it has one; "" when
    there are none."""
    refs = next((r for r in (read_references(Path(d) / "references.json") for d in dirs) if r), None)
    if refs is None:
        return ""
    values = refs["values"]
    rows_of = reference_rows(values)
    named = [c for _, m in rows_of for c in m if c not in ("recon_mse", "probe_acc", "knn_acc", "semantic_recon")]
    cols = [c for c in ("recon_mse", "probe_acc", "knn_acc", "semantic_recon", *sorted(set(named)))
            if any(c in m and m[c] in values for _, m in rows_of)]
    rows = []
    for label, m in rows_of:
        cells = []
        for c in cols:
            v = values.get(m.get(c, ""))
            cells.append(f"{number(v[0])} [{number(v[1])}, {number(v[2])}]" if isinstance(v, list) and len(v) == 3
                         else number(float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else "")
        if any(cells):
            rows.append([label] + cells)
    ceiling = (f"; the {CEILING_ROW.split(' (')[0]} is one fixed pair of samples, without an interval"
               if any(label == CEILING_ROW for label, *_ in rows) else "")
    return (f"References (no model; 95 % bootstrap interval over the test items{ceiling}, from `references.json`):\n\n"
            + markdown_table(["reference"] + [f"{c} {direction(c)}" for c in cols], rows))


def skipped_text(df):
    """The protocol line naming every run record that could not be read (counted as failed), so
    that no run drops out of the tables unnoticed."""
    bad = df[df["status"] == "unreadable"]
    if bad.empty:
        return ""
    return "- unreadable run records, counted as failed: " + "; ".join(str(e) for e in bad["error"])


READ_PAIRWISE = (
    "Every two models are compared on every metric on their finished seeds, paired by seed: the same seed gives "
    "both the same data order and noise (and, on the shared networks, the same initial weights), so `test` is a "
    "paired t-test on the per-seed differences over their common seeds (`n_pairs`), a Wilcoxon signed-rank test "
    "from 10 common seeds, and Welch's t-test only when fewer than 2 seeds are common. `constant`: every common "
    "seed gives the same difference (or both models are constant), so the difference is exact under this "
    "protocol: p = 0 when it is not zero. The p-values of one metric are Holm-corrected over all its pairs; "
    "`significant` means p_holm < 0.05, and `better` then names the winner in the metric's direction. Beside each "
    "p-value, the effect: `diff` = mean_a − mean_b (over the common seeds when paired) with its 95 % interval "
    "[`diff_low`, `diff_high`], and `p_a_better`, the share of seeds (paired) or of seed pairs (Welch) on which "
    "model_a scored better, ties counting one half. An empty `better` means these seeds cannot tell the two "
    "apart, whatever the means say; a pair that cannot be tested has a blank p, `note` says why, and it is never "
    "significant. The signed-rank test on n seeds cannot give p below 2 / 2^n, so with many pairs Holm may put "
    "significance out of reach whatever the data (10 seeds, 28 pairs); `note` then says so, and the interval "
    "is the thing to read.")


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
