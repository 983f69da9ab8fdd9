"""Where one toy2d training step's time goes: the single-thread GEMM rate on ALI's joint-D
shapes and on the 128-wide layers of the other models at batch 100, then a torch.profiler table
of 50 `train_step` calls of one model.

    OMP_NUM_THREADS=1 python -m benchmarks.perf.toy2d.profile_step ali
"""
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.perf.toy2d import setup
from benchmarks.perf.perf import fresh_model

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
    cfg, data, runtime = setup()
    model = fresh_model(sys.argv[1], cfg, data, runtime)
    runtime.prepare(model)
    model.train()
    x, bs = data.train.x.float(), 100 * model.batches_per_step
    for i in range(20):
        model.train_step(x[:bs], i)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(50):
            model.train_step(x[i * bs:(i + 1) * bs], i)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
