"""Summaries of a results folder: one row per (model, seed), and mean +- std per model.

Reads only the run folders' metrics.json, so it works on any folder, finished or not."""
import json
from pathlib import Path

import pandas as pd

from .errors import UserError
from .io import atomic_write_text

COLUMNS = ["model", "seed", "status", "g_steps", "d_steps", "images_seen", "train_seconds",
           "params_g", "params_e", "params_d", "recon_mse", "probe_acc"]
# direction of "better" for the metric columns, shown in the per-model table's header
BETTER = {"recon_mse": "↓", "probe_acc": "↑"}


def collect(out_dir):
    rows = []
    for path in sorted(Path(out_dir).glob("*/seed*/metrics.json")):
        try:
            rows.append(json.loads(path.read_text()))
        except ValueError:
            rows.append({"model": path.parent.parent.name, "seed": path.parent.name[4:], "status": "unreadable"})
    df = pd.DataFrame(rows)
    for c in COLUMNS:
        if c not in df:
            df[c] = pd.NA
    extra = sorted(c for c in df.columns if c not in COLUMNS and c not in ("metric_seconds", "error"))
    return df[COLUMNS + extra]


def _fmt(v):
    if v is None or (isinstance(v, float) and pd.isna(v)) or v is pd.NA:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def markdown(df):
    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "".join("| " + " | ".join(_fmt(v) for v in row) + " |\n" for row in df.itertuples(index=False))


def per_model(df):
    """mean ± std over the seeds that finished, with run counts so failures stay visible."""
    out = []
    for name, g in df.groupby("model", sort=False):
        ok = g[g["status"] == "ok"]
        row = {"model": name, "runs": len(g), "ok": len(ok), "diverged": int((g["status"] == "diverged").sum()),
               "failed": int((~g["status"].isin(["ok", "diverged"])).sum())}
        for col, arrow in BETTER.items():
            vals = pd.to_numeric(ok[col], errors="coerce").dropna()
            row[f"{col} {arrow}"] = "" if vals.empty else (
                f"{vals.mean():.4g} ± {vals.std(ddof=1):.2g}" if len(vals) > 1 else f"{vals.mean():.4g}")
        out.append(row)
    return pd.DataFrame(out)


def write_summary(out_dir):
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise UserError(f"Results folder {out_dir} does not exist; `python -m benchmarks run` writes one.")
    df = collect(out_dir)
    if df.empty:
        raise UserError(f"{out_dir} holds no runs (no <model>/seed<k>/metrics.json); nothing to summarise.")
    df = df.sort_values(["model", "seed"], key=lambda s: s.astype(str), kind="stable")
    atomic_write_text(out_dir / "summary.csv", df.to_csv(index=False))
    bench = out_dir / "benchmark.json"
    header = ""
    if bench.exists():
        c = json.loads(bench.read_text())["config"]
        header = (f"Benchmark `{c['benchmark']}`, budget `{c['budget']}`: dataset `{c['dataset']}`, "
                  f"{c['train']['steps']} G/E steps at batch {c['train']['batch_size']}, "
                  f"z_dim {c['arch']['z_dim']}, width {c['arch']['width']}. recon_mse: per-pixel MSE of G(E(x)) on "
                  "the test split, pixels in [0, 1]. probe_acc: logistic regression on E(x), fit on train, test accuracy.\n\n")
    text = f"# Summary of {out_dir.name}\n\n{header}## Per model (mean ± std over seeds)\n\n{markdown(per_model(df))}\n## Per run\n\n{markdown(df)}"
    atomic_write_text(out_dir / "summary.md", text)
    return text
