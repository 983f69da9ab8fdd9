"""Trains one model on digits for a few steps with `train()` directly, no evaluation: run by
tests/test_scale.py under torchrun (and in-process as the single-process reference).

torchrun ... -m tests.ddp_worker OUT MODEL STEPS fast|plain [COMPILE_BACKEND]"""
import json
import sys
from pathlib import Path

import models
from benchmarks import parallel
from benchmarks.config import load_config
from benchmarks.data import load_dataset
from benchmarks.run import model_args
from benchmarks.runtime import Runtime
from benchmarks.train import train


def run(out, name, steps, fast=True, compile_backend=None):
    """The fast or plain path on the CPU, compiled with `compile_backend` (None: eager); returns
    the spend record."""
    cfg = load_config("digits", budget="smoke", overrides=[f"train.steps={steps}", "train.log_every=1",
                                                             "train.batch_size=16", "eval.track_every=0"])
    data = load_dataset("digits")
    runtime = Runtime("cpu", fast=fast, compile=compile_backend is not None, compile_backend=compile_backend,
                      sync_every=2)
    runtime.seed_everything(0)
    args = model_args(cfg, name, data)
    model = models.build(name, **{**args, "data_shape": tuple(args["data_shape"])})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record = train(model, data.train.x, cfg, out, runtime, seed=0)
    if runtime.is_main:
        (out / "record.json").write_text(json.dumps({**record, "runtime": runtime.describe()}))
    return record


if __name__ == "__main__":
    out, name, steps, path, *backend = sys.argv[1:]
    try:
        run(out, name, int(steps), path == "fast", backend[0] if backend else None)
    finally:
        parallel.shutdown()
