"""Device, precision, compilation and process groups: the one place that knows where tensors
live and how fast they move. Models never see any of it.

Two paths to the same numbers:

* plain (the default on CPU): fp32 eager; the dataset stays on the host and each batch is
  copied to the device; the loop reads the losses every step.
* fast (the default on CUDA): the uint8 dataset lives on the device and batches are gathered,
  flipped and normalised there; bf16 autocast for the networks while losses, batch-norm
  statistics and spectral-norm power iterations stay fp32; channels_last; fused Adam;
  torch.compile per network; losses stay on the device and are read every `sync_every` steps.

Under torchrun (WORLD_SIZE > 1) each network is also wrapped in DistributedDataParallel
(`parallel.py`), and only the main process writes.
"""
import contextlib
import functools
import platform
import random

import numpy as np
import torch
from torch import nn

from . import parallel
from .errors import ConfigError

SYNC_EVERY = 50  # fast path: steps between reads of the losses (and divergence checks)


class Runtime:
    def __init__(self, device="auto", *, fast=None, compile=None, sync_every=SYNC_EVERY):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.device = torch.device(device)
        except RuntimeError:
            raise ConfigError(f"--device {device!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for, but PyTorch sees no CUDA GPU here; use --device cpu or auto.")
        if self.device.type not in ("cpu", "cuda"):
            raise ConfigError(f"--device {device!r} is not supported; use auto, cpu, cuda or cuda:N.")
        self.rank, self.world = 0, 1
        if parallel.launched():
            self.rank, self.world, self.device = parallel.init(self.device)
        cuda = self.device.type == "cuda"
        self.fast = cuda if fast is None else bool(fast)
        self.compile = self.fast and cuda if compile is None else bool(compile)
        self.sync_every = max(1, int(sync_every)) if self.fast else 1
        if self.fast and cuda:
            # Autotuned convolution kernels. TF32 matmuls stay off: the fp32 islands are meant as fp32.
            torch.backends.cudnn.benchmark = True

    @property
    def is_main(self):
        """Only the main process writes results, logs and checkpoints."""
        return self.rank == 0

    # --- data ------------------------------------------------------------------------------
    def place(self, x):
        """The training set where batches are cut from: on the device for the fast path."""
        return x.to(self.device) if self.fast else x

    def batch(self, x, flip=None):
        """Real data for a model: uint8 images -> float in [-1, 1] on the device (rows with
        `flip` set mirrored left-right); points stay as they are."""
        x = x.to(self.device, non_blocking=True)
        if flip is not None and x.dim() == 4:
            x = torch.where(flip.to(x.device).view(-1, 1, 1, 1), x.flip(-1), x)
        x = x.float().div_(127.5).sub_(1.0) if x.dtype == torch.uint8 else x.float()
        if self.fast and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def my_rows(self, idx, parts):
        """This process's share of `parts` concatenated global batches (all of it when alone)."""
        if self.world == 1 or idx is None:
            return idx
        rows = idx.view(parts, -1)
        if rows.shape[1] % self.world:
            raise ConfigError(f"train.batch_size {rows.shape[1]} does not split over {self.world} processes; "
                              f"use a batch size divisible by {self.world}.")
        n = rows.shape[1] // self.world
        return rows[:, self.rank * n:(self.rank + 1) * n].reshape(-1)

    # --- models ----------------------------------------------------------------------------
    def prepare(self, model):
        """Set `model` up for training on this runtime, in place (after its checkpoint is loaded)."""
        model.shard = (self.rank, self.world)
        if self.world > 1:
            parallel.sync_batchnorm(model, self.device)
        if self.fast:
            _channels_last(model)
            for opt in model.optimizers.values():
                _fuse(opt)
            _mixed_precision(model, self.device.type)
            if self.compile:
                for _, net in parallel.networks(model):
                    net.compile()
        if self.world > 1:
            parallel.wrap(model, self.device)
        return model

    def release(self, model):
        """Back to plain networks for checkpoints and evaluation."""
        parallel.unwrap(model)
        return model

    def autocast(self):
        if not self.fast:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16)

    def mean_over_processes(self, t):
        return parallel.all_mean(t) if self.world > 1 else t

    def synchronize(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # --- randomness --------------------------------------------------------------------------
    @staticmethod
    def seed_everything(seed):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)  # seeds CUDA too

    def rng_state(self):
        state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
        if self.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def set_rng_state(self, state):
        torch.set_rng_state(state["torch"])
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        if "cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda"], self.device)

    def describe(self):
        """What a result depends on, for the run record."""
        info = {"device": str(self.device), "threads": torch.get_num_threads(),
                "path": "fast" if self.fast else "plain", "compile": self.compile,
                "sync_every": self.sync_every, "processes": self.world}
        if self.fast:
            info["precision"] = "bf16 autocast (losses, batch-norm statistics, spectral norm in fp32)"
        if self.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(self.device)
        else:
            info["cpu"] = platform.processor() or platform.machine()
        return info


def _channels_last(model):
    """4-D weights, and the optimiser moments of a resumed run beside them, in channels_last."""
    model.to(memory_format=torch.channels_last)
    for opt in model.optimizers.values():
        for p, state in opt.state.items():
            if p.dim() == 4:
                for k, v in state.items():
                    if torch.is_tensor(v) and v.shape == p.shape:
                        state[k] = v.contiguous(memory_format=torch.channels_last)


def _fuse(opt):
    """Switch an Adam built by a model to the fused kernel; the step counters of a resumed run
    move to the parameters' device, where the fused kernel expects them."""
    if not isinstance(opt, torch.optim.Adam):
        return
    for group in opt.param_groups:
        group["fused"], group["foreach"] = True, False
    for p, state in opt.state.items():
        if "step" in state:
            state["step"] = state["step"].to(p.device, torch.float32)


def _to_float(out):
    if torch.is_tensor(out):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, (tuple, list)):
        return type(out)(_to_float(o) for o in out)
    return out


def _fp32(forward, device_type):
    @functools.wraps(forward)
    def run(*args, **kwargs):
        with torch.autocast(device_type, enabled=False):
            return forward(*_to_float(args), **kwargs)
    return run


def _mixed_precision(model, device_type):
    """bf16 autocast reaches the networks; these hooks keep the numerically delicate parts fp32:
    network outputs (so every loss is computed in fp32), the networks a model declares in
    `fp32_networks`, batch norm (its statistics and running averages) and weight
    parametrisations (the spectral-norm power iteration)."""
    for _, net in parallel.networks(model, ema=True):
        net.register_forward_hook(lambda module, args, out: _to_float(out))
    for name in model.fp32_networks:
        net = getattr(model, name)
        net.forward = _fp32(net.forward, device_type)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.forward = _fp32(m.forward, device_type)
        for plist in getattr(m, "parametrizations", {}).values():
            for p in plist:
                p.forward = _fp32(p.forward, device_type)


def versions():
    """Library versions every number depends on."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "numpy", "scikit-learn", "torchmetrics", "torch-fidelity", "bigan-bench"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    out["git_commit"] = _git_commit()
    return out


def _git_commit():
    """The code's commit, with '+dirty' when tracked files differ from it; None outside git."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")
