"""`python -m benchmarks perf CONFIG --ops`: what one training step asks of the machine, counted
on any machine (a CPU in CI, where a GPU's timings cannot be had): operators per step, the proxy
for a GPU's kernel launches, on the plain path and compiled, and how much of a compiled step runs
outside the compiled graphs.

Read from torch.profiler's record of steps after warm-up (compilation done), the harness's own
step (`train.step_fn`: batch preparation, the model's train_step, the loss read):

* aten ops: the operators the Python code and the autograd engine dispatch, each counted where
  it is called (an aten event inside no other aten event), leaving out those that launch no
  kernel (views, allocations, conjugation flags);
* compiled regions: calls of compiled graphs, forward (dynamo's "Torch-Compiled Region", with or
  without autograd) and backward (AOTAutograd's CompiledFunctionBackward);
* fused kernels: the kernels inductor generates (cpp_fused_* on a CPU, recorded with inductor's
  kernel profiling switched on); with the aot_eager backend a graph runs its aten ops one by one,
  and they count as aten ops inside the regions;
* outside: the aten ops of the eager glue between the regions (losses, optimiser steps, batch
  preparation, gradient accumulation), and the share of the step's time spent there, measured
  under the profiler, whose cost per recorded op weighs on the eager side more.
"""
import collections
import functools
import shlex
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile
from tqdm.auto import tqdm

from ..core.io import atomic_write_json, atomic_write_text
from ..core.runtime import Runtime, versions
from ..training.batches import BatchStream
from ..training.losses import LossReader
from ..training.train import step_fn

REGION_PREFIXES = ("Torch-Compiled Region", "CompiledFunctionBackward")  # a compiled forward call; a compiled backward
NO_KERNEL = {"empty", "empty_strided", "empty_like", "resolve_conj", "resolve_neg", "lift_fresh", "set_"}
WARMUP = 3  # steps before counting: compilation (forward, then backward), optimiser state, the EMA's start


@functools.lru_cache(maxsize=None)
def launches_kernel(name):
    """Whether aten op `name` ("aten::expand") does work of its own: not a view (every overload
    returns an alias of an input), an allocation or a flag."""
    op = name.split("::", 1)[-1]
    if op in NO_KERNEL:
        return False
    packet = getattr(torch.ops.aten, op, None)
    if packet is None:
        return True
    schemas = [getattr(packet, o)._schema for o in packet.overloads()]
    views = [s.returns and all(r.alias_info is not None and not r.alias_info.is_write for r in s.returns)
             for s in schemas]
    return not (views and all(views))


def _region(event):
    return event.name.startswith(REGION_PREFIXES)


def _ancestors(event):
    e = event.cpu_parent
    while e is not None:
        yield e
        e = e.cpu_parent


def tally(events, steps):
    """Per-step counts from the profiler's events of `steps` steps (see the module docstring)."""
    counts = collections.Counter()
    region_us = 0.0
    for e in events:
        if _region(e):
            if not any(_region(a) for a in _ancestors(e)):
                counts["regions"] += 1
                region_us += e.time_range.elapsed_us()
        elif "cpp_fused" in e.name or e.name.startswith("triton_"):
            counts["fused_kernels"] += 1
        elif e.name.startswith("aten::") and launches_kernel(e.name):
            ancestors = list(_ancestors(e))
            if any(a.name.startswith("aten::") for a in ancestors):
                continue  # inside another op: counted where it was called
            counts["aten_in_regions" if any(_region(a) for a in ancestors) else "aten_outside"] += 1
    out = {k: round(v / steps, 1) for k, v in counts.items()}
    out["ops"] = round((counts["aten_in_regions"] + counts["aten_outside"] + counts["fused_kernels"]) / steps, 1)
    return out, region_us


def device_busy(events, steps):
    """What the accelerator did in a profile of `steps` steps: the share of the profiled time in
    which some kernel, copy or fill ran on it (the union of their intervals over the span from the
    first recorded event to the last), and such device events per step; None without device events
    (a CPU)."""
    device = sorted((e.time_range.start, e.time_range.end) for e in events
                    if e.device_type == torch.autograd.DeviceType.CUDA)
    if not device:
        return None
    busy, end = 0.0, float("-inf")
    for a, b in device:  # union of intervals, sorted by start
        if b > end:
            busy += b - max(a, end)
            end = b
    span = max(e.time_range.end for e in events) - min(e.time_range.start for e in events)
    return {"busy": round(busy / span, 3) if span > 0 else None,
            "device_events_per_step": round(len(device) / steps, 1)}


def profile_steps(step, start, steps, runtime):
    """Profile `steps` calls of step(i) from i = `start`, CPU and (on CUDA) the device:
    {"steps", "gpu_busy", "device_events_per_step"}, the last two None on a CPU."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if runtime.device.type == "cuda" else [])
    runtime.synchronize()
    with profile(activities=activities) as prof:
        for i in range(start, start + steps):
            step(i)
        runtime.synchronize()
    busy = device_busy(prof.events(), steps) or {}
    return {"steps": steps, "gpu_busy": busy.get("busy"), "device_events_per_step": busy.get("device_events_per_step")}


def harness_loop(model, cfg, data, runtime):
    """The training loop's own step of `model` (train.step_fn, without logging and checkpoints) as
    step(i), the losses read as often as `run` reads them: (step, reader, the networks compiled,
    images per step). perf times it; count_steps counts its operators."""
    per_step = model.batches_per_step * cfg.train.batch_size
    x = runtime.place(data.train.x)
    stream = BatchStream(len(x), seed=0, device=x.device, hflip=cfg.train.hflip)
    reader = LossReader(runtime)
    compiled = runtime.prepare(model)
    train_step = step_fn(model, x, stream, runtime, reader, per_step)
    model.train()

    def step(i):
        train_step(i)
        if len(reader.pending) >= runtime.sync_every:
            reader.read()

    return step, reader, compiled, per_step


def count_steps(name, cfg, data, runtime, steps, model_fn):
    """Counts per training step of model `name` on `runtime`'s path (`steps` profiled after WARMUP)."""
    model = model_fn(name, cfg, data, runtime)
    step, reader, compiled, _ = harness_loop(model, cfg, data, runtime)
    for i in range(WARMUP):
        step(i)
    runtime.synchronize()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        for i in range(WARMUP, WARMUP + steps):
            step(i)
        runtime.synchronize()
        wall_us = (time.perf_counter() - t) * 1e6
    reader.read()
    runtime.release(model)
    out, region_us = tally(prof.events(), steps)
    if compiled:
        out["outside_share"] = round(1 - region_us / wall_us, 3)
        out["compiled"] = ",".join(compiled)
    return out


def run_ops(cfg, data, runtime, steps, out_dir, model_fn, slug):
    """The plain path, and the runtime's path compiled when it compiles: a table per model."""
    record = {"device": device_name(runtime), "versions": versions(), "benchmark": cfg.benchmark, "budget": cfg.budget,
              "command": shlex.join(["python", "-m", "benchmarks", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "steps": steps, "warmup": WARMUP,
              "batch_size": cfg.train.batch_size, "data_shape": list(data.shape),
              "compiled_path": ({"path": "fast" if runtime.fast else "plain", "backend": str(runtime.compile_backend)}
                                if runtime.compile else None),
              "models": [], "complete": False}
    out_dir.mkdir(parents=True, exist_ok=True)

    def write():  # after every model, so a run stopped part-way keeps what it counted
        atomic_write_json(out_dir / f"{slug}.json", record)
        text = ops_markdown(record)
        atomic_write_text(out_dir / f"{slug}.md", text)
        return text

    for name in tqdm(cfg.models, desc="perf --ops", dynamic_ncols=True):
        row = {"model": name, "plain": count_steps(name, cfg, data, Runtime(runtime.device, fast=False, compile=False),
                                                   steps, model_fn)}
        if runtime.compile:
            with torch._inductor.config.patch({"cpp.enable_kernel_profile": True}):
                row["compiled"] = count_steps(name, cfg, data, runtime, steps, model_fn)
        record["models"].append(row)
        write()
    record["complete"] = True
    return write()


def device_name(runtime):
    if runtime.device.type == "cuda":
        return torch.cuda.get_device_name(runtime.device)
    import platform
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def ops_markdown(r):
    comp = r["compiled_path"]
    lines = [f"# Operators per training step on {r['device']}", "",
             f"- command: `{r['command']}`", f"- date: {r['date']}",
             f"- benchmark: {r['benchmark']} ({r['budget']} sizes), batch {r['batch_size']}, data {r['data_shape']}",
             f"- {r['steps']} profiled steps after {r['warmup']} warm-up steps, per G step (with its D steps, the "
             "batch preparation and the loss read)",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()), "",
             "aten ops: operators dispatched where they are called, views and allocations left out; on a GPU "
             "each is about one kernel launch. Compiled: the "
             + (f"{comp['path']} path, backend {comp['backend']}" if comp else "path was not compiled (no --compile)")
             + "; regions are calls of compiled forward and backward graphs; fused kernels are the kernels "
               "the compiler generated (inductor); outside are the aten ops of the eager code between the regions "
               "(losses, optimiser, batch preparation, gradient accumulation), and its share of the step's time, "
               "under the profiler.", "",
             "| model | plain: aten ops | compiled: ops | regions | fused kernels | aten ops in regions "
             "| aten ops outside | share of time outside |",
             "|---|---|---|---|---|---|---|---|"]
    for m in r["models"]:
        c = m.get("compiled") or {}
        cells = [m["model"], m["plain"]["ops"]] + [c.get(k, "") for k in ("ops", "regions", "fused_kernels",
                                                                        "aten_in_regions", "aten_outside")]
        share = c.get("outside_share")
        cells.append(f"{share:.0%}" if isinstance(share, float) else "")
        lines.append("| " + " | ".join(str(v) for v in cells) + " |")
    if not r.get("complete", True):
        lines += ["", "**Incomplete:** the command stopped before it had counted every model."]
    return "\n".join(lines) + "\n"
