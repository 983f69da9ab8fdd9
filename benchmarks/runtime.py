"""Device, precision and seeding: the one place that knows where tensors live.

Training code asks the runtime for the device, for batches already on it, and for RNG
state to checkpoint. Mixed precision, compilation and process groups belong here too.
"""
import platform
import random

import numpy as np
import torch

from .errors import ConfigError


class Runtime:
    def __init__(self, device="auto"):
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

    def batch(self, x):
        """Real data for a model: uint8 images -> float in [-1, 1]; points stay as they are."""
        x = x.to(self.device, non_blocking=True)
        if x.dtype == torch.uint8:
            return x.float().div_(127.5).sub_(1.0)
        return x.float()

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
        info = {"device": str(self.device),
                "threads": torch.get_num_threads()}
        if self.device.type == "cuda":
            info["gpu"] = torch.cuda.get_device_name(self.device)
        else:
            info["cpu"] = platform.processor() or platform.machine()
        return info


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
