"""The fast path (device-resident data, bf16 autocast, channels_last, fused Adam, deferred loss
reads) must train like the plain fp32 path. CPU stands in for the GPU here; compilation has its
own tests (test_compiled.py)."""
import csv
import math

import pytest
import torch

import models
from benchmarks.config import load_config
from benchmarks.data import load_dataset
from benchmarks.training.build import build_model, model_args
from benchmarks.core.runtime import Runtime
from benchmarks.training.train import train

STEPS = 6
# bf16 keeps 8 bits of mantissa: network outputs agree to ~0.4%, and after a few Adam steps
# the losses of the two paths agree to about 1%. A broken fp32 island (e.g. a QP critic
# under autocast) shows up as 10-100% differences in the first steps.
REL, ABS = 0.03, 0.01


def _losses(name, fast, tmp_path, sync_every=4):
    cfg = load_config("digits", budget="smoke", overrides=[f"train.steps={STEPS}", "train.log_every=1",
                                                             "train.batch_size=32"])
    data = load_dataset("digits")
    runtime = Runtime("cpu", fast=fast, compile=False, sync_every=sync_every)
    runtime.seed_everything(0)
    model = build_model(cfg, name, data.shape)
    run_dir = tmp_path / f"{name}-{fast}"
    run_dir.mkdir()
    out = train(model, data.train.x, cfg, run_dir, runtime, seed=0)
    assert out["status"] == "ok"
    return model, list(csv.DictReader(open(run_dir / "losses.csv")))


@pytest.mark.parametrize("name", ["bigan", "bigan-qp-full"])
def test_fast_path_losses_follow_the_plain_path(name, tmp_path):
    _, plain = _losses(name, False, tmp_path)
    model, fast = _losses(name, True, tmp_path)
    assert [r["step"] for r in plain] == [r["step"] for r in fast] == [str(s) for s in range(STEPS)]
    for a, b in zip(plain, fast):  # every step is logged although the fast path reads every 4th
        for k in a:
            x, y = float(a[k]), float(b[k])
            assert math.isclose(x, y, rel_tol=REL, abs_tol=ABS), (name, a["step"], k, x, y)
    # what stays fp32 on the fast path: parameters, optimiser moments, BN running statistics
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(b.dtype == torch.float32 for b in model.buffers() if b.is_floating_point())
    assert all(s["exp_avg"].dtype == torch.float32 for o in model.optimizers.values() for s in o.state.values())


def test_fast_path_networks_return_fp32_under_autocast():
    runtime = Runtime("cpu", fast=True, compile=False)
    model = models.build("bigan", data_shape=(1, 16, 16), z_dim=8, width=8, total_steps=10)
    runtime.prepare(model)
    with runtime.autocast():
        z = model.sample_latent(4)
        x = model.G(z)
        conv = torch.nn.functional.conv2d(x, torch.ones(1, 1, 3, 3))
    assert conv.dtype == torch.bfloat16  # autocast is really on
    assert x.dtype == model.E(x).dtype == model.D(x, z).dtype == torch.float32
    assert x.is_contiguous(memory_format=torch.channels_last) or x.shape[1] == 1


def test_deferred_reads_still_stop_at_the_first_bad_step(tmp_path):
    class NaNAt7(models.get("autoencoder")):
        def train_step(self, batch, step):
            out = super().train_step(batch, step)
            return {k: v * float("nan") if step >= 7 else v for k, v in out.items()}

    cfg = load_config("digits", budget="smoke", overrides=["train.steps=20"])
    data = load_dataset("digits")
    runtime = Runtime("cpu", fast=True, compile=False, sync_every=5)
    model = NaNAt7(**{**model_args(cfg, "autoencoder", data.shape), "data_shape": data.shape})
    out = train(model, data.train.x, cfg, tmp_path, runtime, seed=0)
    assert out["status"] == "diverged" and out["diverged_at"] == 7 and out["g_steps"] == 7
    steps = [int(r["step"]) for r in csv.DictReader(open(tmp_path / "losses.csv"))]
    assert steps[-1] == 7  # the blow-up is in the log


def test_fast_checkpoint_resumes_on_the_plain_path_with_plain_adam(tmp_path):
    """A fast-path checkpoint holds fused-Adam flags and channels_last moments. Resumed on the
    plain path, Adam must run unfused with moments laid out like their (contiguous) parameters:
    the fused kernel would pair moments and gradients by flat memory position. The reference is
    the same checkpoint with its optimiser state made plain by hand."""
    import shutil

    cfg = load_config("digits", budget="smoke", overrides=["train.steps=3", "train.checkpoint_every=1000",
                                                             "train.batch_size=32"])
    data = load_dataset("digits")
    fast_dir = tmp_path / "run"
    fast_dir.mkdir()
    runtime = Runtime("cpu", fast=True, compile=False)
    runtime.seed_everything(0)
    assert train(build_model(cfg, "bigan", data.shape), data.train.x, cfg, fast_dir, runtime, seed=0)["status"] == "ok"
    ckpt = torch.load(fast_dir / "checkpoint.pt", weights_only=False)
    opt = ckpt["optim"]["optimizers"]["d"]
    assert opt["param_groups"][0]["fused"] is True
    assert any(not v.is_contiguous() for s in opt["state"].values() for v in s.values() if v.dim() == 4)

    ref_dir = tmp_path / "reference"
    shutil.copytree(fast_dir, ref_dir)
    for o in ckpt["optim"]["optimizers"].values():
        for g in o["param_groups"]:
            g["fused"], g["foreach"] = None, None
        for s in o["state"].values():
            s.update({k: v.contiguous() if k != "step" else v.cpu() for k, v in s.items()})
    torch.save(ckpt, ref_dir / "checkpoint.pt")

    longer = cfg.replace(train=cfg.train.replace(steps=5))  # resumed for 2 more steps; the model as built for 3
    resumed = {}
    for d in (fast_dir, ref_dir):
        model = build_model(cfg, "bigan", data.shape)
        plain = Runtime("cpu", fast=False, compile=False)
        assert train(model, data.train.x, longer, d, plain, seed=0)["status"] == "ok"
        resumed[d.name] = model
    for o in resumed["run"].optimizers.values():
        assert not o.param_groups[0]["fused"]
        for p, s in o.state.items():
            assert s["exp_avg"].stride() == s["exp_avg_sq"].stride() == p.stride() and p.is_contiguous()
    for (n, a), b in zip(resumed["run"].named_parameters(), resumed["reference"].parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-7), (n, (a - b).abs().max().item())
