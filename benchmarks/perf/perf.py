"""`python -m benchmarks perf CONFIG`: how fast the harness trains and scores, against a baseline.

For each model, in one process, the same number of training steps twice:
* baseline: fp32 eager, a DataLoader over the uint8 cache, one host-to-device copy per batch,
  the losses read with `.item()` every step (what a straightforward PyTorch loop does);
* harness: the runtime's own path (on CUDA the fast path: device-resident data, bf16
  autocast, channels_last, fused Adam, torch.compile, losses read every `SYNC_EVERY` steps).
Warm-up steps (compilation included) are not timed. On 2-D points, `bigan` in the `run`
command's whole loop (`train()`) is also timed against a hand-written BiGAN of the same widths
(`plain_bigan.py`): what the harness costs beyond the model's own work. Then InceptionV3 feature
throughput (images only) and the linear probe on the GPU/torch back end against scikit-learn.
Writes <out>/<device>.md (the page: markdown.py) and .json with the device, versions and
command; --out defaults to runs/perf, which git ignores, so a check of one's own machine never
overwrites the committed tables in results/perf.
"""
import re
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..config import load_config
from ..core.io import atomic_write_json, atomic_write_text
from ..core.runtime import Runtime, versions
from ..core.weights import Weights
from ..data import load_dataset
from ..training.build import build_model, check_models, check_sizes, model_args
from ..training.capture import WARMUP_STEPS as CAPTURE_WARMUP
from ..training.train import train
from . import ops, plain_bigan
from .evaluation import dinov2_speed, inception_speed, probe_speed
from .markdown import to_markdown


def fresh_model(name, cfg, data, runtime, seed=0):
    """Model `name` as `run` builds it, from seed `seed`, on the runtime's device."""
    runtime.seed_everything(seed)
    return build_model(cfg, name, data.shape).to(runtime.device)


def timed_steps(step, steps, warmup, runtime):
    """Seconds for `steps` calls of step after `warmup` untimed ones."""
    for i in range(warmup):
        step(i)
    runtime.synchronize()
    t = time.perf_counter()
    for i in range(warmup, warmup + steps):
        step(i)
    runtime.synchronize()
    return time.perf_counter() - t


def baseline_speed(name, cfg, data, steps, warmup, device, profile_steps=0):
    """The straightforward loop: DataLoader, per-batch copy, fp32 eager, .item() every step; with
    `profile_steps`, that many more steps profiled (ops.profile_steps)."""
    runtime = Runtime(device, fast=False, compile=False)
    model = fresh_model(name, cfg, data, runtime)
    runtime.prepare(model)  # the plain path's settings: no autotuning, IEEE fp32, multi-tensor (unfused) Adam
    per_step = model.batches_per_step * cfg.train.batch_size
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data.train.x), batch_size=per_step,
                                         shuffle=True, drop_last=True, pin_memory=runtime.device.type == "cuda",
                                         generator=torch.Generator().manual_seed(0))
    batches = iter(())

    def step(i):
        nonlocal batches
        x = next(batches, None)
        if x is None:
            batches = iter(loader)
            x = next(batches)
        out = model.train_step(runtime.batch(x[0]), i)
        return {k: float(v) for k, v in out.items()}

    model.train()
    seconds = timed_steps(step, steps, warmup, runtime)
    prof = ops.profile_steps(step, warmup + steps, profile_steps, runtime) if profile_steps else None
    return seconds, per_step, prof


def harness_speed(name, cfg, data, steps, warmup, runtime, profile_steps=0):
    """The training loop's own path (`train.py` without logging and checkpoints); with
    `profile_steps`, that many more steps profiled (ops.profile_steps: how busy the GPU is)."""
    model = fresh_model(name, cfg, data, runtime)
    step, reader, compiled, per_step = ops.harness_loop(model, cfg, data, runtime)
    if runtime.capture_blocker(model) is None:  # --capture: the eager steps and the capture itself are not timed
        warmup = max(warmup, CAPTURE_WARMUP + 1)
    seconds = timed_steps(step, steps, warmup, runtime)
    prof = ops.profile_steps(step, warmup + steps, profile_steps, runtime) if profile_steps else None
    reader.read()
    compile_s = runtime.compile_seconds() if compiled else 0.0  # all of it falls in the warm-up
    runtime.release(model)
    return seconds, per_step, model, compile_s, prof


def run_loop_seconds(name, cfg, data, runtime, steps):
    """Wall-clock seconds of `train()`, the `run` command's loop, for `steps` steps of a fresh model in
    a scratch folder: the FLOP-counted first step, the loss reads, the log, the progress bar and the
    checkpoints at the config's `checkpoint_every`, all included (tracking off)."""
    cfg = cfg.replace(train=cfg.train.replace(steps=steps), eval=cfg.eval.replace(track_every=0))
    model = fresh_model(name, cfg, data, runtime)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        out = train(model, data.train.x, cfg, Path(d), runtime, seed=0, desc=f"{name} run loop")
        seconds = time.perf_counter() - t
    assert out["status"] == "ok", out
    return seconds


def loop_vs_plain(cfg, data, runtime, steps):
    """The `bigan` model in the run loop against a hand-written BiGAN of the same widths
    (`plain_bigan.py`) on 2-D points, side by side: plain, harness, plain again; the harness is
    compared with the faster plain timing (the two bracket any drift in the machine's load)."""
    args = model_args(cfg, "bigan", data.shape)
    x = data.train.x.float()

    def plain():
        return plain_bigan.time_steps(steps, x, z_dim=args["z_dim"], width=args["width"],
                                      batch_size=cfg.train.batch_size, lr=args["lr"],
                                      betas=(args["adam_beta1"], args["adam_beta2"]), weight_decay=args["weight_decay"])

    before = plain()
    harness = run_loop_seconds("bigan", cfg, data, runtime, steps)
    after = plain()
    per_k = 1000 / steps
    return {"steps": steps, "threads": torch.get_num_threads(), "checkpoint_every": cfg.train.checkpoint_every,
            "log_every": cfg.train.log_every, "plain_before_s_per_1k": round(before * per_k, 3),
            "plain_after_s_per_1k": round(after * per_k, 3), "harness_run_s_per_1k": round(harness * per_k, 3),
            "ratio": round(harness / min(before, after), 3)}


def device_slug(runtime, default_path=True):
    """File name: the device, plus the path when it is not that device's default."""
    name = "cpu" if runtime.device.type == "cpu" else torch.cuda.get_device_name(runtime.device)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug if default_path else f"{slug}-{'fast' if runtime.fast else 'plain'}"


def run_perf(cfg, data, runtime, steps, warmup, out_dir, weights=None, inception_images=None, default_path=True,
             profile_steps=0, dinov2_images=None, eval_timing=True):
    """Time cfg's models and, on images, the evaluation's feature networks (with the weights files
    `weights`, a core.weights.Weights, names); writes <out_dir>/<device>.md and .json and returns the
    markdown."""
    rows = []
    record = {"device": ops.device_name(runtime), "runtime": runtime.describe(), "versions": versions(),
              "command": shlex.join(["python", "-m", "benchmarks", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "benchmark": cfg.benchmark, "budget": cfg.budget,
              # arch in the order the committed tables print it (style, the default, came first)
              "sizes": {"batch_size": cfg.train.batch_size, "style": cfg.arch.style, "z_dim": cfg.arch.z_dim,
                        "width": cfg.arch.width, "data_shape": list(data.shape)},
              "steps": steps, "warmup": warmup, "training": rows, "run_loop_vs_plain": None,
              "profile_steps": profile_steps, "inception": None, "dinov2": None, "probe": None, "complete": False}
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = device_slug(runtime, default_path)

    def write():
        # after every model, so a perf stopped part-way (a time limit on a lent GPU) keeps what it measured
        atomic_write_json(out_dir / f"{slug}.json", record)
        text = to_markdown(record)
        atomic_write_text(out_dir / f"{slug}.md", text)
        return text

    for name in tqdm(cfg.models, desc="perf", dynamic_ncols=True):
        base_s, per_step, base_prof = baseline_speed(name, cfg, data, steps, warmup, runtime.device, profile_steps)
        fast_s, _, model, compile_s, prof = harness_speed(name, cfg, data, steps, warmup, runtime, profile_steps)
        rows.append({"model": name, "images_per_step": per_step,
                     "baseline_img_s": round(steps * per_step / base_s, 1),
                     "harness_img_s": round(steps * per_step / fast_s, 1),
                     "baseline_ms_per_g_step": round(1000 * base_s / steps, 2),
                     "harness_ms_per_g_step": round(1000 * fast_s / steps, 2),
                     "speedup": round(base_s / fast_s, 2), "compile_s": round(compile_s, 1),
                     # with --capture: "graph", or why this model keeps the eager step
                     "captured": (runtime.capture_blocker(model) or "graph") if runtime.capture else None,
                     **({"profile": {"baseline": base_prof, "harness": prof}} if profile_steps else {})})
        write()
    if len(data.shape) == 1 and data.shape[0] == 2 and "bigan" in cfg.models:
        record["run_loop_vs_plain"] = loop_vs_plain(cfg, data, runtime, steps)
    if len(data.shape) == 3 and eval_timing:  # InceptionV3 reads images; points have none
        n_inc = inception_images or (5000 if runtime.device.type == "cuda" else 128)
        inc_rate, inc_label, inc_modes = inception_speed(data, runtime, n_inc, weights)
        record["inception"] = {"images_per_s": round(inc_rate, 1), "setting": inc_label, "precisions": inc_modes}
        write()
        n_dino = dinov2_images if dinov2_images is not None else (1000 if runtime.device.type == "cuda" else 0)
        if n_dino:  # ViT-L/14 at 224 px: seconds per image on a CPU, so timed by default on a GPU only
            rate, label = dinov2_speed(data, runtime, n_dino, weights)
            record["dinov2"] = {"images_per_s": round(rate, 1), "setting": label}
            write()
    if eval_timing:
        record["probe"] = probe_speed(model, data, runtime, cfg.eval.probe_max_train)
    record["complete"] = True
    return write()


def main_perf(args, runtime):
    """`perf` with the command line's arguments, on the runtime `cli` built for its --path."""
    budget = args.budget or ("full" if runtime.device.type == "cuda" else "smoke")
    cfg = load_config(args.config, budget=budget, overrides=args.overrides, models=args.models)
    check_models(cfg)
    data = load_dataset(cfg.dataset, root=args.data_root, **cfg.dataset_options)
    check_sizes(cfg, data)
    default_path = args.path == "auto" or runtime.fast == (runtime.device.type == "cuda")
    if args.ops:  # operators per step instead of timings: <device>-ops.md
        print(ops.run_ops(cfg, data, runtime, args.steps, Path(args.out), fresh_model,
                          f"{device_slug(runtime, default_path)}-ops"))
        return 0
    weights = Weights(fid=args.fid_weights, dinov2=args.dinov2_weights)  # perf times no LPIPS: it has no flag
    print(run_perf(cfg, data, runtime, args.steps, args.warmup, Path(args.out), weights,
                   default_path=default_path, profile_steps=args.profile, eval_timing=args.eval_timing))
    return 0
