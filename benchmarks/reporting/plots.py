"""Figures of a results folder, drawn from what the runs wrote (metrics.json, losses.csv,
track.csv, truncation.csv and the run-time pictures, the files read by run_files.py), so `report`
rebuilds them without models.

Every function takes the per-run table of `report.collect` and writes PNGs under `out`; it
returns [(file name, one sentence on how to read it)] for report.md, empty when the folder holds
nothing to draw (a partial folder, a benchmark without that figure).
"""
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..core.io import save_figure  # noqa: E402
from .run_files import folder_references, read_csvs, read_picture, run_dir, warn_skipped  # noqa: E402

# One colour per model, in the sorted order of the folder's models. tab10 has ten colours and a
# benchmark has eleven rows or more: the rows past ten take dark colours of their own rather than
# repeating the first ones (ALI and random-init shared a blue).
_MORE_COLOURS = ("navy", "maroon", "lime", "gold", "magenta", "darkslategray")


def model_colour(i):
    return f"C{i}" if i < 10 else _MORE_COLOURS[(i - 10) % len(_MORE_COLOURS)]


# Run-time pictures assembled into one panel per model (the first finished seed), with captions.
RUN_PICTURES = {
    "samples.png": "Samples of each model from the shared fixed evaluation noise (toy2d: generated points over the "
                   "true mode centres, marked x).",
    "recon.png": "Reconstructions: each test input beside G(E(x)), the same inputs for every model.",
    "interp.png": "Latent interpolations: two real test images at the ends, between them G of the straight line "
                  "between their codes E(x); smooth, realistic frames mean a well-organised latent space.",
    "neighbours_euclidean.png": "Nearest neighbours in latent space by Euclidean distance: the first image of a row "
                                "is a test image, the others are the test images whose codes E(x) lie closest.",
    "neighbours_cosine.png": "Nearest neighbours in latent space by cosine similarity, as the row above but by angle.",
}


def _save(fig, path):
    save_figure(fig, path, bbox_inches="tight")


def _ok_values(df, model, col):
    rows = df[(df["model"] == model) & (df["status"] == "ok")]
    return pd.to_numeric(rows[col], errors="coerce").dropna() if col in rows else pd.Series(dtype=float)


def _grid(n, ncols=3, panel=(3.2, 2.6)):
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel[0] * ncols, panel[1] * nrows), dpi=100, squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, list(axes.flat[:n])


def bar_charts(df, metrics, direction, out):
    """One bar chart per metric: the mean over finished seeds, one dot per seed."""
    models, made = sorted(df["model"].unique()), []
    for col in metrics:
        vals = [_ok_values(df, m, col) for m in models]
        if not any(len(v) for v in vals):
            continue
        fig, ax = plt.subplots(figsize=(max(4.0, 0.55 * len(models) + 1.5), 3.2), dpi=110)
        for i, v in enumerate(vals):
            if len(v):
                ax.bar(i, v.mean(), color="C0", alpha=0.55)
                ax.scatter(i + np.linspace(-0.15, 0.15, len(v)) if len(v) > 1 else [i], v, c="k", s=12, zorder=3)
        ax.set_xticks(range(len(models)), models, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel(f"{col} {direction(col)}")
        ax.set_title(f"{col} ({direction(col)} better); dots: seeds", fontsize=9)
        _save(fig, out / f"bar_{col}.png")
        made.append((f"bar_{col}.png", f"`{col}` per model: bar = mean over finished seeds, dots = single seeds "
                                       f"({'higher' if direction(col) == '↑' else 'lower'} is better)."))
    return made


def generation_column(columns):
    """The headline generation metric of a table: FID when computed, else the DINOv2 FD, else the
    domain FD, else modes."""
    for prefix in ("fid_", "fd_dinov2_", "fd_", "modes_3sigma", "modes_"):
        found = sorted(c for c in columns if c.startswith(prefix))
        if found:
            return found[0]
    return None


def tradeoff(df, direction, out):
    """Generation metric against probe accuracy, one point per model, error bars = std over seeds."""
    gen = generation_column(df.columns)
    if gen is None or "probe_acc" not in df:
        return []
    fig, ax = plt.subplots(figsize=(5.2, 4.0), dpi=110)
    drawn = 0
    for i, m in enumerate(sorted(df["model"].unique())):
        x, y = _ok_values(df, m, "probe_acc"), _ok_values(df, m, gen)
        if not len(x) or not len(y):
            continue
        sd = lambda v: v.std(ddof=1) if len(v) > 1 else 0.0  # noqa: E731
        ax.errorbar(x.mean(), y.mean(), xerr=sd(x), yerr=sd(y), fmt="o", color=model_colour(i), capsize=3, label=m)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return []
    ax.set_xlabel("probe_acc ↑")
    ax.set_ylabel(f"{gen} {direction(gen)}")
    ax.legend(fontsize=7, loc="best")
    _save(fig, out / "tradeoff.png")
    best = "top right" if direction(gen) == "↑" else "bottom right"
    return [("tradeoff.png", f"Generation (`{gen}`) against representation (`probe_acc`), mean ± std over seeds: "
                             f"the best models sit {best}.")]


def _mean_by(frames, key):
    return pd.concat(frames).apply(pd.to_numeric, errors="coerce").groupby(key).mean().sort_index()


def loss_curves(df, out):
    """Per model, each logged loss against the step, the mean over finished seeds."""
    logs = read_csvs(df, "losses.csv", "step")
    if not logs:
        return []
    fig, axes = _grid(len(logs))
    for ax, (m, frames) in zip(axes, sorted(logs.items())):
        mean = _mean_by(frames, "step")
        for col in mean.columns:
            ax.plot(mean.index, mean[col], label=col, lw=1)
        ax.set_title(m, fontsize=9)
        ax.set_xlabel("G/E step", fontsize=8)
        ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    _save(fig, out / "curves_losses.png")
    return [("curves_losses.png", "Training losses per model (mean over seeds); a discriminator loss near 0 with a "
                                  "rising generator loss means D has won.")]


def track_curves(df, direction, out):
    """The periodic generation metric against the step: one line per model, band = min..max over seeds."""
    tracks = read_csvs(df, "track.csv", "step")
    cols = sorted({c for frames in tracks.values() for f in frames for c in f.columns if c != "step"})
    made = []
    for col in cols:
        fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
        for i, (m, frames) in enumerate(sorted(tracks.items())):
            per_seed = [f.set_index("step")[col] for f in frames if col in f]
            if not per_seed:
                continue
            table = pd.concat(per_seed, axis=1)
            ax.plot(table.index, table.mean(axis=1), color=model_colour(i), label=m, lw=1.2)
            if table.shape[1] > 1:
                ax.fill_between(table.index, table.min(axis=1), table.max(axis=1), color=model_colour(i), alpha=0.15)
        ax.set_xlabel("G/E step")
        ax.set_ylabel(f"{col} {direction(col) or ''}")
        ax.legend(fontsize=7, loc="best")
        _save(fig, out / f"curves_{col}.png")
        made.append((f"curves_{col}.png", f"`{col}` measured during training on a fixed noise batch (mean over seeds, "
                                          "band = min to max): how fast each model improves and whether it is stable."))
    return made


def truncation(df, direction, out):
    """The truncation sweep of Gaussian-prior models: each score against the threshold."""
    sweeps = read_csvs(df, "truncation.csv", "threshold")
    if not sweeps:
        return []
    cols = [c for c in next(iter(sweeps.values()))[0].columns if c != "threshold"]
    fig, axes = plt.subplots(1, len(cols), figsize=(4.6 * len(cols), 3.6), dpi=110, squeeze=False)
    ticks = None
    for i, (m, frames) in enumerate(sorted(sweeps.items())):
        mean = _mean_by(frames, "threshold")
        finite = [t for t in mean.index if math.isfinite(t)]
        xs = [t if math.isfinite(t) else max(finite, default=1.0) * 1.4 for t in mean.index]
        ticks = (xs, [f"{t:g}" if math.isfinite(t) else "none" for t in mean.index])
        for ax, col in zip(axes[0], cols):
            if col in mean:  # a sweep written before a column existed has no line for it
                ax.plot(xs, mean[col], "o-", color=model_colour(i), label=m, ms=3, lw=1.2)
    for ax, col in zip(axes[0], cols):
        ax.set_xticks(*ticks)
        ax.set_xlabel("truncation threshold (none = the untruncated prior)")
        ax.set_ylabel(f"{col} {direction(col) or ''}")
    axes[0][0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    _save(fig, out / "truncation.png")
    return [("truncation.png", f"Truncation sweep (Gaussian-prior models): {', '.join(f'`{c}`' for c in cols)} against "
                               "the threshold; a smaller threshold trades diversity for fidelity (BigGAN's "
                               "trade-off).")]


def _seed_points(df, model, x, y):
    """(x values, y values) of a model's finished runs that have both."""
    rows = df[(df["model"] == model) & (df["status"] == "ok")]
    if x not in rows or y not in rows:
        return [], []
    both = rows[[x, y]].apply(pd.to_numeric, errors="coerce").dropna()
    return both[x].tolist(), both[y].tolist()


def fidelity_diversity(df, out):
    """Per feature space: precision against recall and density against coverage, one point per
    seed and a colour per model; the truncation sweep of Gaussian-prior models as a path through
    its thresholds; the held-out real sample (references.json) as a black star."""
    spaces = sorted(c[len("precision_"):] for c in df.columns
                    if c.startswith("precision_") and f"recall_{c[len('precision_'):]}" in df)
    refs, sweeps, made = folder_references(df), read_csvs(df, "truncation.csv", "threshold"), []
    for space in spaces:
        pairs = [(f"recall_{space}", f"precision_{space}"), (f"coverage_{space}", f"density_{space}")]
        pairs = [p for p in pairs if p[0] in df and p[1] in df]
        fig, axes = plt.subplots(1, len(pairs), figsize=(5.0 * len(pairs), 4.2), dpi=110, squeeze=False)
        drawn = 0
        for ax, (x, y) in zip(axes[0], pairs):
            for i, m in enumerate(sorted(df["model"].unique())):
                xs, ys = _seed_points(df, m, x, y)
                if xs:
                    ax.scatter(xs, ys, color=model_colour(i), s=22, label=m, zorder=3)
                    drawn += 1
                frames = [f for f in sweeps.get(m, []) if x in f and y in f]
                if frames:  # mean over seeds at each threshold, from the most truncated to the prior
                    path = _mean_by(frames, "threshold")
                    ax.plot(path[x], path[y], "-", color=model_colour(i), lw=0.8, alpha=0.6, marker=".", ms=4)
            if f"real_{x}" in refs and f"real_{y}" in refs:
                ax.scatter([refs[f"real_{x}"]], [refs[f"real_{y}"]], marker="*", s=120, color="k",
                           label="held-out real sample", zorder=4)
            ax.set_xlabel(f"{x} ↑ (diversity)")
            ax.set_ylabel(f"{y} ↑ (fidelity)")
        if not drawn:
            plt.close(fig)
            continue
        axes[0][0].legend(fontsize=7, loc="best")
        fig.tight_layout()
        _save(fig, out / f"fidelity_{space}.png")
        made.append((f"fidelity_{space}.png",
                     f"Fidelity against diversity in the `{space}` space: precision against recall (k = 3) and "
                     "density against coverage (k = 5), one point per seed. Top right is best; a model high on the "
                     "fidelity axis and low on the diversity one draws good samples from too few modes. The star is a "
                     "held-out real sample scored the same way (the ceiling), and a thin line with dots is a "
                     "Gaussian-prior model's truncation sweep, mean over seeds, from the smallest threshold to the "
                     "untruncated prior."))
    return made


def label_efficiency(df, out):
    """The linear probe's test accuracy against the labels per class (probe_acc_<n>), one line per
    model (mean over seeds, band = min to max), the raw-pixel reference as a dashed black line."""
    ns = sorted(int(c[len("probe_acc_"):]) for c in df.columns
                if c.startswith("probe_acc_") and c[len("probe_acc_"):].isdigit())
    if not ns:
        return []
    fig, ax = plt.subplots(figsize=(5.8, 4.0), dpi=110)
    drawn = 0
    for i, m in enumerate(sorted(df["model"].unique())):
        per_n = [(n, _ok_values(df, m, f"probe_acc_{n}")) for n in ns]
        per_n = [(n, v) for n, v in per_n if len(v)]
        if not per_n:
            continue
        x = [n for n, _ in per_n]
        ax.plot(x, [v.mean() for _, v in per_n], "o-", color=model_colour(i), label=m, ms=3, lw=1.2)
        ax.fill_between(x, [v.min() for _, v in per_n], [v.max() for _, v in per_n], color=model_colour(i), alpha=0.15)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return []
    refs = folder_references(df)
    raw = [(n, refs[f"raw_probe_acc_{n}"][0]) for n in ns if isinstance(refs.get(f"raw_probe_acc_{n}"), list)]
    if raw:
        ax.plot(*zip(*raw), "k--", lw=1.2, label="raw input (no model)")
    ax.set_xscale("log")
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xlabel("labelled train items per class")
    ax.set_ylabel("linear probe test accuracy ↑")
    ax.legend(fontsize=7, loc="best")
    _save(fig, out / "label_efficiency.png")
    return [("label_efficiency.png",
             "Label efficiency: the linear probe on E(x) trained on n labelled items per class, the test accuracy "
             "averaged over the same fixed label draws for every model (line: mean over seeds, band: min to max); "
             "dashed: the same probe on the raw input. A representation that learnt the classes stays high at few "
             "labels, where the raw input falls.")]


def montages(df, out):
    """One panel per model of each run-time picture, from its first finished seed whose picture
    can be read (a damaged one is skipped with a warning naming it)."""
    made = []
    ok = df[df["status"] == "ok"].sort_values(["model", "seed"], key=lambda s: s.astype(str))
    for name, caption in RUN_PICTURES.items():
        images = {}
        for _, row in ok.iterrows():
            path = run_dir(row) / name
            if row["model"] not in images and path.exists():
                try:
                    images[row["model"]] = (row["seed"], read_picture(path))
                except Exception as e:  # noqa: BLE001 - a damaged picture (cut off, empty): the next seed's
                    warn_skipped(path, e)
        if not images:
            continue
        h, w = max(im.shape[0] for _, im in images.values()), max(im.shape[1] for _, im in images.values())
        scale = min(6.0, max(2.6, w / 100)) / w
        fig, axes = _grid(len(images), panel=(w * scale + 0.2, h * scale + 0.45))
        for ax, (m, (seed, im)) in zip(axes, sorted(images.items())):
            ax.imshow(im, interpolation="nearest")
            ax.set_title(f"{m} (seed {seed})", fontsize=8)
            ax.axis("off")
        fig.tight_layout()
        _save(fig, out / name)
        made.append((name, caption))
    return made


def all_figures(df, metrics, direction, out):
    """Every figure of a results folder into `out` (the plots/ folder); [(file, caption)]."""
    out = Path(out)
    return (bar_charts(df, metrics, direction, out) + tradeoff(df, direction, out) + fidelity_diversity(df, out)
            + label_efficiency(df, out) + loss_curves(df, out) + track_curves(df, direction, out)
            + truncation(df, direction, out) + montages(df, out))
