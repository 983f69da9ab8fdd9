"""The metric columns of the results: which way is better, each one's range, and which columns a
config's runs write (named as the evaluation names them, with protocol.py's count tags). One
place for this knowledge: the report reads the direction and range here, and a study file is
checked against `produced` before anything trains (a mistyped metric would otherwise surface
hours later as an empty target or an untested claim).
"""
import math

from .protocol import LPIPS_COLUMN, PRDC, count_tag, dinov2_tag

# Which way is better, by column name or prefix. A metric column not listed gets no arrow and no bold.
# Density is about 1 for samples distributed like the data and may exceed it; higher is read as
# better as in its paper's and StudioGAN's tables (its ceiling in references.json says what real data scores).
HIGHER = ("probe_", "knn_", "semantic_recon", "cs_", "is_", "modes_", "high_quality", "precision_", "recall_",
          "density_", "coverage_")
LOWER = ("recon_mse", "latent_cycle_mse", "fd_", "fid_", "kid_", "kl_modes", "recon_fd_", "recon_lpips_")
SPREAD = "_sd"  # a column's spread (probe_acc_10_sd: its sd over label draws): no direction, not a metric column

# The range of each metric, by column name or prefix (the first match): intervals are clipped to
# it. modes_* end at the number of modes, which report reads from the runs' dataset record.
BOUNDS = (
    (("probe_", "knn_", "semantic_recon", "high_quality", "precision_", "recall_", "coverage_"), (0.0, 1.0)),
    (("recon_mse", "latent_cycle_mse", "fd_", "fid_", "kl_modes", "modes_", "recon_fd_", "recon_lpips_", "density_"),
     (0.0, math.inf)),
    (("cs_", "is_"), (1.0, math.inf)),  # an Inception Score is exp(mean KL) >= 1
)


def direction(col):
    """"↑" (higher is better), "↓" (lower is better) or None (not a metric column)."""
    if col.endswith(SPREAD):
        return None
    if col.startswith(HIGHER) or col in HIGHER:
        return "↑"
    if col.startswith(LOWER) or col in LOWER:
        return "↓"
    return None


def bounds(col, n_modes=None):
    if col.startswith("modes_") and n_modes:
        return 0.0, float(n_modes)
    return next((b for prefixes, b in BOUNDS if col.startswith(prefixes)), (-math.inf, math.inf))


# references.json names a model-free reference of a column by a prefix (raw_probe_acc_10: the
# raw input's probe_acc_10; real_fd_digits: a held-out real sample's fd_digits), and the majority
# class's accuracy once for every probe and kNN column.
REFERENCE_PREFIXES = ("raw_", "chance_", "mean_image_", "real_")


def reference_keys(metric):
    """The references.json keys a claim may compare the column `metric` with (`ref:<key>`)."""
    keys = [p + metric for p in REFERENCE_PREFIXES]
    return keys + (["majority_acc"] if metric.startswith(("probe_acc", "knn_acc")) else [])


def _prdc(suffix):
    return [f"{m}_{suffix}" for m in PRDC]


def generation_columns(cfg, points):
    """The generation scores of one set of samples (the run's, and each threshold of its truncation
    sweep, truncation.csv): mode counts and the raw points' precision... on 2-D points, the domain
    classifier's FD and score with precision... in its features on images."""
    if points:
        return ["modes_nearest", "modes_3sigma", "high_quality", "kl_modes", *_prdc("points")]
    return [f"fd_{cfg.dataset}", f"cs_{cfg.dataset}", *_prdc(cfg.dataset)]


def produced(cfg, points=None):
    """The metric columns a run of the resolved config `cfg` (config.Config) can write, as
    evaluation/evaluate.py names them: the reconstruction, latent-cycle, probe and kNN columns,
    a label-efficiency probe per eval.probe_labels count, then the generation scores of 2-D
    points (`points` true) or of images (the Inception and DINOv2 columns where their sample
    counts are set, LPIPS where its weights load); `points` None: a dataset of unknown kind, both.
    Some of them stay empty in a given run (probe_pool_acc exists for BigBiGAN only; a
    label count larger than a class is left out), but none outside this set is ever written."""
    ec = cfg.eval
    out = ["recon_mse", "latent_cycle_mse", "probe_acc", "probe_bal_acc", "probe_pool_acc", "knn_acc",
           *(f"probe_acc_{n}" for n in ec.probe_labels)]
    if points in (True, None):
        out += generation_columns(cfg, True)
    if points in (False, None):
        out += [*generation_columns(cfg, False), "semantic_recon", f"recon_fd_{cfg.dataset}", LPIPS_COLUMN]
        if ec.inception_samples:
            tag = count_tag(ec.inception_samples)
            out += [f"fid_{tag}", f"is_{tag}", f"kid_{tag}", *_prdc(tag)]
        if ec.dinov2_samples:
            tag = dinov2_tag(ec.dinov2_samples)
            out += [f"fd_{tag}", *_prdc(tag)]
    return out
