"""Device, precision, compilation and process groups: the one place that knows where tensors
live and how fast they move. Models never see any of it.

Two paths to the same numbers:

* plain (the default on CPU): fp32 eager; the dataset stays on the host and each batch is
  copied to the device; multi-tensor (unfused) Adam; the loop reads the losses every step.
* fast (the default on CUDA): the uint8 dataset lives on the device and batches are gathered,
  flipped and normalised there; bf16 autocast for the networks while losses, batch-norm
  statistics and spectral-norm power iterations stay fp32; channels_last; fused Adam;
  torch.compile per network; losses stay on the device and are read every `sync_every` steps.

The precision policy, set explicitly here and nowhere else, and recorded by `precision()` in
every run's config.json (the protocol of every report):

* plain path: IEEE fp32 for every matmul and convolution (TF32 off for cuBLAS and cuDNN; PyTorch's
  default lets cuDNN convolutions use TF32): the reference loop computes what it says.
* fast path: the networks under bf16 autocast; what stays fp32 there (network outputs and
  losses, batch norm, the spectral-norm power iteration, a model's `fp32_networks` such as
  BiGAN-QP's critic) takes TF32 matmuls and convolutions on a GPU that has TF32 (compute
  capability 8.0 and up), IEEE fp32 elsewhere. A CPU has no TF32: nothing changes there.
  `tf32=False` (`--no-tf32`) keeps IEEE fp32 on the fast path too. Whether TF32 is close enough
  for BiGAN-QP's critic (bf16 is not: its gradient is a small difference of two large terms) is
  for a GPU check to measure (benchmarks/perf/gpu_check.sh).
* evaluation on every path (the domain classifier, tracking, InceptionV3, DINOv2, LPIPS, the
  probes): IEEE fp32, so that scores compare across devices and paths. `prepare` sets training's
  precision, `release` and `evaluation()` set evaluation's.

Compilation covers training steps only: each network's forward is compiled on its own, the
dynamo caches are cleared for every model (the shared blocks' code objects would otherwise
collect the entries of every model until the recompile limit turns compilation off), and
tracking and evaluation run the eager code.

Under torchrun (WORLD_SIZE > 1) each network is also wrapped in DistributedDataParallel
(`parallel.py`), and only the main process writes.
"""
import contextlib
import functools
import os
import platform
import random

import numpy as np
import torch

from . import parallel
from .errors import ConfigError
from .io import default_cache_dir
from .networks import has_batchnorm, set_optimizer_path, unwrap_networks, wrap_networks

SYNC_EVERY = 50  # fast path: steps between reads of the losses (and divergence checks)


def fp32_mode(fast, gpu_capability, tf32=None):
    """How training's fp32 matmuls and convolutions compute (the module docstring's policy):
    "tf32" on the fast path on a GPU whose compute capability (major, minor) is 8.0 or more,
    unless `tf32` is False; "ieee" otherwise (a CPU passes None)."""
    has_tf32 = gpu_capability is not None and tuple(gpu_capability) >= (8, 0)
    return "tf32" if fast and has_tf32 and tf32 is not False else "ieee"


EVALUATION_FP32 = "ieee"  # the policy's evaluation precision, on every path


def _share_compiled_graphs():
    """Inductor caches what it compiles (FX graphs and AOT autograd graphs, keyed by the graph,
    its shapes and the versions). Kept in the project's cache folder, every shard process, seed
    and later run on this machine reuses a graph compiled once, and the cache outlives /tmp's
    per-user default. A folder the user set (TORCHINDUCTOR_CACHE_DIR) is kept; importing
    torch._dynamo writes the default into the variable, so the default is not taken for one."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir as inductor_default

    if os.environ.get("TORCHINDUCTOR_CACHE_DIR") in (None, inductor_default()):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(default_cache_dir() / "inductor")


class Runtime:
    def __init__(self, device="auto", *, fast=None, compile=None, compile_backend="inductor", sync_every=SYNC_EVERY,
                 tf32=None, capture=False):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.device = torch.device(device)
        except RuntimeError:
            raise ConfigError(f"--device {device!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError("--device cuda was asked for, but PyTorch sees no CUDA GPU here; use --device cpu or "
                              "auto.")
        if self.device.type not in ("cpu", "cuda"):
            raise ConfigError(f"--device {device!r} is not supported; use auto, cpu, cuda or cuda:N.")
        self.rank, self.world = 0, 1
        if parallel.launched():
            self.rank, self.world, self.device = parallel.init(self.device)
        cuda = self.device.type == "cuda"
        self.fast = cuda if fast is None else bool(fast)
        # --compile forces compilation on any path and device (to reproduce the GPU path on a CPU).
        self.compile = self.fast and cuda if compile is None else bool(compile)
        self.compile_backend = compile_backend
        # --capture: a capturable model's whole step replayed as one CUDA graph (training/capture.py);
        # on a CPU the graph is emulated (core/graphs.py), which runs the same code without its speed
        self.capture = bool(capture)
        if self.compile:
            _share_compiled_graphs()
        if self.compile and isinstance(compile_backend, str):
            known = torch._dynamo.list_backends(exclude_tags=())
            if compile_backend not in known:
                raise ConfigError(f"--compile-backend {compile_backend!r} is not a torch.compile backend; "
                                  f"use one of {', '.join(known)}.")
        self.sync_every = max(1, int(sync_every)) if self.fast else 1
        capability = torch.cuda.get_device_capability(self.device) if cuda else None
        self.fp32 = fp32_mode(self.fast, capability, tf32)  # training's fp32 matmuls and convolutions
        self.set_precision(training=False)  # until `prepare`: the evaluator's classifier trains first

    def set_precision(self, training=True):
        """The process-wide numeric settings of this path, for training or for evaluation, set
        explicitly (not left to PyTorch's defaults); `prepare` sets training's, `release`
        evaluation's, so that two runtimes in one process (`perf`) each use their own."""
        mode = self.fp32 if training else EVALUATION_FP32
        torch.backends.cuda.matmul.fp32_precision = mode
        torch.backends.cudnn.conv.fp32_precision = mode
        for backend in (torch.backends.mkldnn.matmul, torch.backends.mkldnn.conv):
            backend.fp32_precision = "ieee"  # the CPU: no TF32
        # Autotuned convolution kernels on the fast path only: the plain path is the reference loop.
        torch.backends.cudnn.benchmark = self.fast and self.device.type == "cuda"
        # A compiled backward "donates" its saved buffers and then refuses retain_graph=True, which
        # the simultaneous update (BiGAN, ALI: two backward passes through one D graph) needs.
        # Donation only saves memory; turning it off changes no number.
        from torch._functorch import config as functorch_config
        functorch_config.donated_buffer = not self.compile

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
        """Set `model` up for training on this runtime, in place (after its checkpoint is loaded).
        Returns the names of the networks that were compiled."""
        self.set_precision(training=True)
        model.shard = (self.rank, self.world)
        if self.world > 1:
            parallel.sync_batchnorm(model, self.device)
        if self.fast:
            model.to(memory_format=torch.channels_last)
        captured = self.capture_blocker(model) is None
        for opt in model.optimizers.values():  # every path: a checkpoint may come from the other one
            set_optimizer_path(opt, fused=self.fast, captured=captured)
        compile_fn = None
        if self.compile:
            torch._dynamo.reset()  # a fresh cache per model: see the module docstring
            compile_fn = functools.partial(torch.compile, backend=self.compile_backend)
        # Under torchrun, synchronised batch norm would break the compiled graph at every layer.
        compiled = wrap_networks(model, self.device.type, fast=self.fast, compile_fn=compile_fn,
                                  skip_compile=lambda net: self.world > 1 and has_batchnorm(net))
        if self.world > 1:
            parallel.wrap(model, self.device)
        model.compiled_networks = frozenset(compiled)  # a model may pick the cheaper step form for them
        return compiled

    def capture_blocker(self, model):
        """Why `model`'s training step is not captured as a graph on this runtime (None: it is;
        training/capture.py says what a capturable model promises)."""
        if not self.capture:
            return "capture off (--capture)"
        if not getattr(model, "capturable", False):
            return (f"{type(model).__name__} does not declare capturable = True (its train_step may depend on "
                    "host values; models/base.py)")
        if self.world > 1:
            return "data-parallel runs (torchrun) keep the eager step"
        if self.device.type == "cuda" and not self.fast:
            return "the plain path copies each batch from the host; capture needs the fast path's device-resident data"
        return None

    def release(self, model):
        """Back to plain eager networks, and evaluation's precision, for checkpoints and evaluation."""
        self.set_precision(training=False)
        parallel.unwrap(model)
        unwrap_networks(model)
        return model

    def autocast(self, cache=True):
        """The fast path's bf16 autocast (nothing on the plain path). `cache=False` for a graph
        capture: autocast's cache of bf16 weight copies would be freed when the context exits."""
        if not self.fast:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=cache)

    def eager(self):
        """Run compiled networks as plain eager code (tracking inside training): no compilation,
        no cache entries for no-grad, eval-mode or new-batch-size calls."""
        return torch.compiler.set_stance("force_eager") if self.compile else contextlib.nullcontext()

    @contextlib.contextmanager
    def evaluation(self):
        """Evaluation inside training (tracking): eager code at evaluation's precision, then
        training's again."""
        with self.eager():
            self.set_precision(training=False)
            try:
                yield
            finally:
                self.set_precision(training=True)

    @staticmethod
    def compile_seconds():
        """Seconds spent compiling since the last dynamo reset (forward and backward graphs)."""
        return torch._dynamo.utils.calculate_time_spent()["total_wall_time"]

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

    def precision(self):
        """What each kind of arithmetic runs in on this path (the module docstring's policy):
        training's fp32 matmuls and convolutions, autocast, and evaluation's fp32."""
        gpu = self.device.type == "cuda"
        fp32 = self.fp32 if gpu else "ieee"
        out = {"fp32_matmul": fp32, "fp32_conv": fp32, "cudnn_benchmark": self.fast and gpu,
               "evaluation_fp32": EVALUATION_FP32}
        if self.fast:
            out["autocast"] = "bf16"
            out["fp32_kept"] = ("network outputs and losses, batch norm, spectral-norm power iteration, "
                                "the model's fp32_networks, parameters and optimiser state"
                                + (" (their matmuls and convolutions in TF32)" if fp32 == "tf32" else ""))
        else:
            out["autocast"] = None
        return out

    def describe(self):
        """What a result depends on, for the run record."""
        info = {"device": str(self.device), "threads": torch.get_num_threads(),
                "path": "fast" if self.fast else "plain", "compile": self.compile,
                "sync_every": self.sync_every, "processes": self.world, "precision": self.precision()}
        if self.capture:
            info["capture"] = ("CUDA graph per phase of capturable models" if self.device.type == "cuda" else
                               "emulated (a CPU has no CUDA graphs: the captured step's code replayed)")
        if self.compile:
            info["compile_backend"] = self.compile_backend
            info["compile_scope"] = ("training steps of every network; tracking and evaluation eager"
                                     + ("; networks with batch norm stay eager (synchronised batch norm "
                                        "breaks compiled graphs)" if self.world > 1 else ""))
        if self.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(self.device)
        else:
            info["cpu"] = platform.processor() or platform.machine()
        return info


def versions():
    """Library versions every number depends on."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("torch", "torchvision", "numpy", "scipy", "statsmodels", "scikit-learn", "torchmetrics",
                "torch-fidelity", "bigan-bench"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    out["git_commit"] = _git_commit()
    return out


CODE_PATHS = ("benchmarks", "models", "metrics", "pyproject.toml")


def _git_commit():
    """The code's commit, with '+dirty' when tracked code differs from it; None outside git. Only
    the code counts (CODE_PATHS): regenerating a committed results folder rewrites tracked files
    under results/, and an edited README changes no number."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--",
                                *CODE_PATHS],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")
