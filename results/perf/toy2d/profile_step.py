"""Where one toy2d training step's time goes: the single-thread GEMM rate on ALI's joint-D
shapes and on the 128-wide layers of the other models at batch 100, then a torch.profiler table
of 50 `train_step` calls of one model.

    OMP_NUM_THREADS=1 python results/perf/toy2d/profile_step.py ali
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from benchmarks.config import load_config  # noqa: E402
from benchmarks.data import load_dataset  # noqa: E402
from benchmarks.perf import _build  # noqa: E402
from benchmarks.runtime import Runtime  # noqa: E402

if __name__ == "__main__":
    torch.set_num_threads(1)
    for m, k, n in [(200, 384, 512), (200, 512, 512), (100, 128, 128), (128, 100, 128)]:
        a, b = torch.randn(m, k), torch.randn(k, n)
        for _ in range(10):
            a @ b
        t = time.perf_counter()
        for _ in range(200):
            a @ b
        dt = (time.perf_counter() - t) / 200
        print(f"GEMM {m}x{k}x{n}: {dt * 1e6:.0f} us, {2 * m * k * n / dt / 1e9:.1f} GFLOP/s")
    cfg = load_config("toy2d", "full")
    data = load_dataset(cfg["dataset"], **cfg["dataset_options"])
    runtime = Runtime("cpu", fast=False, compile=False)
    model = _build(sys.argv[1], cfg, data, runtime)
    runtime.prepare(model)
    model.train()
    x, bs = data.train.x.float(), 100 * model.batches_per_step
    for i in range(20):
        model.train_step(x[:bs], i)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(50):
            model.train_step(x[i * bs:(i + 1) * bs], i)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
