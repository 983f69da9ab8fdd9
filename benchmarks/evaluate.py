"""Score a trained model with the metrics package and draw its sample and reconstruction
grids. Models are used only through encode / decode / sample_latent."""
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import save_image  # noqa: E402

import metrics  # noqa: E402

EVAL_NOISE_OFFSET = 10_000  # the fixed sample-grid noise of seed s comes from generator seed s + offset


def _batched(fn, x, runtime, batch_size):
    return torch.cat([fn(runtime.batch(x[i:i + batch_size])).float().cpu() for i in range(0, len(x), batch_size)])


def _to_unit(x):
    """Model space -> the space metrics are reported in: pixels in [0, 1]; points unchanged."""
    return (x.float() + 1) / 2 if x.dim() == 4 else x.float()


def _subset(split, n, seed):
    if len(split.x) <= n:
        return split.x, split.y
    idx = torch.randperm(len(split.x), generator=torch.Generator().manual_seed(seed))[:n]
    return split.x[idx], split.y[idx]


@torch.no_grad()
def evaluate(model, data, cfg, runtime, run_dir, seed):
    """Returns {metric: value} plus {"metric_seconds": {metric: seconds}}; writes the figures."""
    ec = cfg["eval"]
    bs = ec["eval_batch_size"]
    model.eval()
    out, seconds = {}, {}
    try:
        t = time.perf_counter()
        x_test = data.test.x
        z_test = _batched(model.encode, x_test, runtime, bs)
        rec = _batched(lambda z: model.decode(z.to(runtime.device)), z_test, runtime, bs)
        real = _to_unit(runtime.batch(x_test).cpu())
        out["recon_mse"] = metrics.reconstruction_mse(real, _to_unit(rec))
        seconds["recon_mse"] = time.perf_counter() - t

        t = time.perf_counter()
        x_tr, y_tr = _subset(data.train, ec["probe_max_train"], seed=0)  # the same subset for every run
        f_tr = _batched(model.encode, x_tr, runtime, bs)
        out["probe_acc"] = metrics.linear_probe(f_tr, y_tr, z_test, data.test.y)["accuracy"]
        seconds["probe_acc"] = time.perf_counter() - t

        g = torch.Generator().manual_seed(seed + EVAL_NOISE_OFFSET)
        samples = model.decode(model.sample_latent(ec["grid_size"], generator=g)).float().cpu()
        n_rec = min(32, len(x_test))
        _draw(samples, real[:n_rec], _to_unit(rec[:n_rec]), data, run_dir)
    finally:
        model.train()
    out["metric_seconds"] = {k: round(v, 3) for k, v in seconds.items()}
    return out


def _draw(samples, real, rec, data, run_dir):
    if samples.dim() == 4:
        save_image(_to_unit(samples), run_dir / "samples.png", nrow=8)
        pairs = torch.stack([real, rec], 1).flatten(0, 1)  # original beside its reconstruction
        save_image(pairs, run_dir / "recon.png", nrow=8)
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
        fig.savefig(run_dir / name)
        plt.close(fig)
