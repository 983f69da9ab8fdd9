"""Data-parallel training through PyTorch's own engine: torchrun starts the processes,
torch.distributed joins them, DistributedDataParallel averages the gradients.

One run is split over the processes by rows: every process draws the same global batch
indices and the same global noise and keeps its own slice, so the optimisation is the
single-process one with the configured (global) batch. Batch-norm statistics are taken over
the global batch as on the papers' single GPU: `nn.SyncBatchNorm` on CUDA; on CPU, where
PyTorch has no synchronised batch norm, `GlobalBatchNorm` all-reduces the moments with
autograd-aware collectives.
"""
import datetime
import os
import warnings

import torch
import torch.distributed as dist
import torch.distributed.nn  # noqa: F401 - the autograd-aware collectives
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .errors import ConfigError

def networks(model, ema=False):
    """(name, module) of the networks the model declares it trains (`model.networks`), plus
    its evaluation-only ones (`model.eval_networks`, e.g. an EMA copy) if `ema`."""
    for name in tuple(model.networks) + (tuple(model.eval_networks) if ema else ()):
        yield name, getattr(model, name)


def launched():
    """True inside a torchrun process with more than one worker."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device):
    """Join the process group torchrun set up; returns (rank, world, device)."""
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ConfigError(f"torchrun started {world} processes on this machine but PyTorch sees "
                              f"{torch.cuda.device_count()} GPUs; use --nproc_per_node {torch.cuda.device_count()}.")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        # Rank 0 evaluates while the others wait at a barrier: allow for a long evaluation.
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=datetime.timedelta(hours=3))
    return rank, world, device


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics cover the rows of every process (CPU / gloo).

    The per-process sums of x and x^2 and the row count are summed with an autograd-aware
    all-reduce, so the backward pass also crosses processes, as in nn.SyncBatchNorm."""

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {x.dim()}-D")

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        xf = x.float()
        count = torch.tensor([x.numel() / x.shape[1]], dtype=torch.float32, device=x.device)
        moments = torch.cat([xf.sum(dims), xf.pow(2).sum(dims), count])
        with warnings.catch_warnings():  # deprecated without an autograd-aware public successor yet
            warnings.simplefilter("ignore", FutureWarning)
            moments = dist.nn.functional.all_reduce(moments)
        c = x.shape[1]
        n = moments[-1]
        mean = moments[:c] / n
        var = (moments[c:2 * c] / n - mean.pow(2)).clamp(min=0)
        with torch.no_grad():
            self.num_batches_tracked += 1
            m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            self.running_mean.lerp_(mean.detach(), m)
            self.running_var.lerp_(var.detach() * n / (n - 1), m)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def sync_batchnorm(model, device):
    """Every BatchNorm of the model's networks (an EMA copy included) replaced by its
    synchronised form, parameters and buffers shared, so the optimisers keep their tensors."""
    for name, net in list(networks(model, ema=True)):
        setattr(model, name, nn.SyncBatchNorm.convert_sync_batchnorm(net) if device.type == "cuda" else _convert(net))


def _convert(module):
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        new.running_mean, new.running_var = module.running_mean, module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, _convert(child))
    return module


class _DDP(DistributedDataParallel):
    """DDP that lets attribute reads through to the wrapped network (a model reading one of
    its network's attributes).
    Methods other than forward would bypass the gradient hooks, so models call their
    networks only through forward."""

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def wrap(model, device):
    """Wrap each trained network of `model` in DDP, in place."""
    for name, net in list(networks(model)):
        if any(p.requires_grad for p in net.parameters()):
            # Buffers (BN running statistics, spectral-norm vectors) evolve identically on every
            # process because statistics and weights are global: no per-forward broadcast.
            setattr(model, name, _DDP(net, device_ids=[device.index] if device.type == "cuda" else None,
                                      broadcast_buffers=False))


def unwrap(model):
    """Undo `wrap`'s DDP shells (checkpoints and evaluation see the plain networks)."""
    for name, net in list(networks(model)):
        if isinstance(net, DistributedDataParallel):
            setattr(model, name, net.module)


def plain_state_dict(model):
    """model.state_dict() with the keys of the unwrapped networks, whatever is wrapped."""
    wrapped = [n for n, net in networks(model) if isinstance(net, DistributedDataParallel)]
    out = {}
    for k, v in model.state_dict().items():
        head, _, rest = k.partition(".")
        out[f"{head}.{rest[len('module.'):]}" if head in wrapped else k] = v
    return out


def all_agree(flag, device):
    """True when `flag` is true on every process (one all-reduce; no-op outside torchrun)."""
    if not dist.is_initialized():
        return bool(flag)
    t = torch.tensor([int(bool(flag))], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def all_mean(t):
    dist.all_reduce(t)
    return t.div_(dist.get_world_size())


def barrier():
    if dist.is_initialized():
        dist.barrier()


def shutdown():
    if dist.is_initialized():
        dist.destroy_process_group()
