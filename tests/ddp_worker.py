"""Run by tests/benchmarks/training/test_scale.py under torchrun (and in-process as the single-process reference):
trains one model on digits for a few steps with `train()` directly, or evaluates one untrained
(seeded, so identical) model with the Evaluator.

torchrun ... -m tests.ddp_worker OUT MODEL STEPS fast|plain [COMPILE_BACKEND] [KEY=VALUE ...]
torchrun ... -m tests.ddp_worker OUT MODEL eval"""
import json
import sys
from pathlib import Path

import torch

from benchmarks.core import parallel
from benchmarks.config import load_config
from benchmarks.data import load_dataset
from benchmarks.evaluation.evaluate import Evaluator
from benchmarks.training.build import build_model
from benchmarks.core.runtime import Runtime
from benchmarks.training.train import train


def run(out, name, steps, fast=True, compile_backend=None, overrides=()):
    """The fast or plain path on the CPU, compiled with `compile_backend` (None: eager), with the
    config's `overrides` (KEY=VALUE, as --set takes them); returns the spend record."""
    cfg = load_config("digits", budget="smoke", overrides=[f"train.steps={steps}", "train.log_every=1",
                                                             "train.batch_size=16", "eval.track_every=0", *overrides])
    data = load_dataset("digits")
    runtime = Runtime("cpu", fast=fast, compile=compile_backend is not None, compile_backend=compile_backend,
                      sync_every=2)
    runtime.seed_everything(0)
    model = build_model(cfg, name, data.shape)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    record = train(model, data.train.x, cfg, out, runtime, seed=0)
    if runtime.is_main:
        (out / "record.json").write_text(json.dumps({**record, "runtime": runtime.describe()}))
    return record


def evaluate(out, name):
    """Evaluate the seeded, untrained `name` on digits with small eval batches (5 generation
    batches: 3 for rank 0, 2 for rank 1); rank 0 writes metrics.json."""
    cfg = load_config("digits", budget="smoke", overrides=["eval.eval_batch_size=100", "eval.references=false"])
    data = load_dataset("digits")
    runtime = Runtime("cpu", fast=False)
    ev = Evaluator(data, cfg, runtime)  # the test built the cached classifier first
    runtime.seed_everything(0)
    model = build_model(cfg, name, data.shape)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    row = ev.evaluate(model, out, seed=0)
    model.eval()
    with torch.no_grad():  # the gathered samples themselves: the same rows in the same order
        (pixels,) = ev._sample_outputs(model, torch.Generator().manual_seed(1), 500, lambda x: (x.flatten(1),), 1,
                                       shared=True)
    if runtime.is_main:
        (out / "metrics.json").write_text(json.dumps({k: v for k, v in row.items() if k != "metric_seconds"}))
        torch.save(pixels, out / "samples.pt")
    return row


if __name__ == "__main__":
    out, name, steps, *rest = sys.argv[1:]
    sets = [a for a in rest if "=" in a]
    rest = [a for a in rest if "=" not in a]
    try:
        if steps == "eval":
            evaluate(out, name)
        else:
            run(out, name, int(steps), rest[0] == "fast", rest[1] if len(rest) > 1 else None, sets)
    finally:
        parallel.shutdown()
