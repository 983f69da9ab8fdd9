"""The fixed settings of the evaluation protocol, shared by the metrics of a run
(evaluation/evaluate.py), the model-free references (evaluation/references.py) and the
TensorBoard log of a training run (training/board.py): the seeds of everything drawn at
evaluation, the subsets, the batch sizes the hardware bounds, and the space pictures and metrics
are computed in.
"""
import torch

EVAL_NOISE_OFFSET = 10_000  # the fixed noise of seed s comes from generator seed s + offset
FIGURE_SEED = 0  # which test images the interpolation and neighbour figures show: the same for every model
INTERP_PAIRS, INTERP_STEPS = 6, 8
NN_QUERIES, NN_K = 6, 8
# Images per InceptionV3 forward at 299 px: activation memory, not speed, bounds it on a CPU.
INCEPTION_BATCH = {"cuda": 500, "cpu": 64}
DINOV2_BATCH = {"cuda": 250, "cpu": 32}  # DINOv2 ViT-L/14 at 224 px, likewise
LPIPS_BATCH = {"cuda": 500, "cpu": 64}  # image pairs per LPIPS forward (VGG16 at 64 px)
KID_SUBSET = 1000  # torch-fidelity's kid_subset_size; clipped to the smaller sample count (noted)
# Label-efficiency probes (probe_acc_<n>): label draws per n, and their seed. The seed is the
# dataset's, not the run's, so every model and the raw-pixel reference get the same draws.
PROBE_DRAWS, LABEL_SEED = 5, 0
PRDC = ("precision", "recall", "density", "coverage")
LPIPS_COLUMN = "recon_lpips_vgg16"  # metrics.lpips: LPIPS with torch-fidelity's VGG16 backbone


def subset(split, n, seed=0):
    """The same deterministic subset for every run (seeded by the dataset, not the run)."""
    if len(split.x) <= n:
        return split.x, split.y
    idx = torch.randperm(len(split.x), generator=torch.Generator().manual_seed(seed))[:n]
    return split.x[idx], split.y[idx]


def eval_noise(seed):
    """A fresh generator of seed `seed`'s fixed evaluation noise, the same stream for every model
    of that seed. The scores, the tracked curve, each truncation threshold and the sample grid
    each start one, so what one of them draws never shifts the noise of another."""
    return torch.Generator().manual_seed(seed + EVAL_NOISE_OFFSET)


def count_tag(n):
    """1000 -> "1k": the sample count in a column name (fid_1k)."""
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def dinov2_tag(n):
    """The suffix of the DINOv2 columns on n samples: fd_dinov2_10k, precision_dinov2_10k, ..."""
    return f"dinov2_{count_tag(n)}"


def to_unit(x):
    """Model space -> the space metrics and pictures use: pixels in [0, 1]; points unchanged."""
    return (x.float() + 1) / 2 if x.dim() == 4 else x.float()

