"""Pictures of one trained model, written into its run folder at evaluation time.

`report` later assembles them into per-benchmark figures, so a committed results folder (which
holds no checkpoints) can rebuild every plot without the models. Every picture is written
atomically, like every other file of a run: a kill mid-write leaves the old picture or none.
"""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import save_image  # noqa: E402

from ..core.io import atomic_write, save_figure  # noqa: E402
from ..core.protocol import to_unit  # noqa: E402


def save_png(path, image, **options):
    """A tensor image (torchvision's save_image grid, `options` its layout) as a PNG, atomically."""
    atomic_write(path, lambda f: save_image(image, f, format="png", **options))


def image_rows(rows, path):
    """One picture, one row per entry of `rows` (each (n, C, H, W) in [-1, 1], the same n)."""
    save_png(path, to_unit(torch.cat(rows)).clamp(0, 1), nrow=len(rows[0]), padding=1, pad_value=1.0)


def samples_and_recon(samples, real, rec, data, run_dir):
    """samples.png (G on the fixed noise) and recon.png (each x beside G(E(x))); for 2-D points,
    scatter plots over the true mode centres."""
    if samples.dim() == 4:
        save_png(run_dir / "samples.png", to_unit(samples), nrow=8)
        pairs = torch.stack([real, rec], 1).flatten(0, 1)  # original beside its reconstruction
        save_png(run_dir / "recon.png", to_unit(pairs), nrow=8)
        return
    centres = torch.tensor(data.meta.get("centres", []), dtype=torch.float32).reshape(-1, 2)
    for name, parts in (("samples.png", [(samples, "G(z)", "tab:blue")]),
                        ("recon.png", [(real, "x", "tab:gray"), (rec, "G(E(x))", "tab:red")])):
        fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
        for pts, label, colour in parts:
            ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.6, label=label, c=colour)
        if len(centres):
            ax.scatter(centres[:, 0], centres[:, 1], marker="x", c="k", s=20, label="mode centres")
        ax.set_aspect("equal")
        ax.legend(fontsize=7, loc="upper right")
        fig.tight_layout()
        save_figure(fig, run_dir / name)
