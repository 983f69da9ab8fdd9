"""Milliseconds of one step of every optimiser of each toy2d model, for PyTorch's three Adam
kernels: the for-loop (one parameter at a time), foreach (multi-tensor) and fused.

    OMP_NUM_THREADS=1 python -m benchmarks.perf.toy2d.adam_paths

Each model is built as `run` builds it, trained one step (so Adam has its state), given random
gradients, and its optimisers stepped 5 x 100 times; the table shows the fastest pass."""
import os
import time

import torch

from benchmarks.perf.toy2d import setup
from benchmarks.perf.perf import fresh_model

KERNELS = {"for-loop": dict(foreach=False, fused=None), "foreach": dict(foreach=True, fused=None),
           "fused": dict(foreach=False, fused=True)}

if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    cfg, data, runtime = setup()
    x = data.train.x.float()
    print("| model | " + " | ".join(KERNELS) + " |\n|---|" + "---|" * len(KERNELS))
    for name in cfg.models:
        ms = []
        for kernel in KERNELS.values():
            model = fresh_model(name, cfg, data, runtime)
            model.train()
            model.train_step(x[:100 * model.batches_per_step], 0)
            opts = list(model.optimizers.values())
            for opt in opts:
                for group in opt.param_groups:
                    group.update(kernel)
                for p in (p for g in opt.param_groups for p in g["params"]):
                    p.grad = torch.randn_like(p) * 1e-3
            best = float("inf")
            for _ in range(5):
                t = time.perf_counter()
                for _ in range(100):
                    for opt in opts:
                        opt.step()
                best = min(best, (time.perf_counter() - t) / 100)
            ms.append(f"{1000 * best:.2f}")
        print(f"| {name} | " + " | ".join(ms) + " |", flush=True)
