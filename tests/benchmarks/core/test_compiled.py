"""The GPU path (fast path + torch.compile) reproduced on the CPU: every registered model takes
compiled training steps, each network's forward is really compiled, without graph breaks or a
hit of dynamo's recompile limit, and tracking runs the eager code. The `aot_eager` backend
captures the same forward and backward graphs as inductor, without generating code."""
import contextlib
import os

import pytest
import torch
import torch._dynamo
from torch._dynamo.eval_frame import _debug_get_cache_entry_list
from torch._dynamo.testing import CompileCounterWithBackend
from torch._dynamo.utils import counters

import models
from benchmarks.core import parallel
from benchmarks.config import load_config
from benchmarks.data import load_dataset
from benchmarks.training.build import build_model
from benchmarks.core.runtime import Runtime, fp32_mode
from benchmarks.training.train import train
from tests.helpers import DWeightGrads, expected_d_weight_grads

STEPS = 4


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _forward_code(net):
    return type(net).forward.__code__


@pytest.mark.slow
@pytest.mark.parametrize("name", models.available())
def test_every_model_trains_compiled_on_the_fast_path(name, digits, tmp_path):
    # Each phase's first step runs eager (its FLOPs are counted there): the post-hoc encoder gets two
    # post-hoc steps of the four, so that one of them runs E compiled.
    cfg = load_config("digits", budget="smoke", overrides=[f"train.steps={STEPS}", "train.batch_size=16",
                                                             "eval.track_every=2", "eval.track_samples=10",
                                                             "model_options.gan-posthoc-encoder.posthoc_fraction=0.5"])
    backend = CompileCounterWithBackend("aot_eager")
    runtime = Runtime("cpu", fast=True, compile=True, compile_backend=backend, sync_every=2)
    runtime.seed_everything(0)
    model = build_model(cfg, name, digits.shape)
    nets = dict(parallel.networks(model, ema=True))
    tracked, ran = [], set()
    for n, net in nets.items():  # which networks the training steps call (PCA's only accumulate statistics)
        net.register_forward_hook(lambda module, args, out, n=n: None if tracked is None else ran.add(n))

    def monitor(m):  # eval mode, no grad, a new batch size: each would be a new cache entry if compiled
        nonlocal tracked
        before, log, tracked = backend.frame_count, tracked, None
        with torch.no_grad():
            m.decode(m.sample_latent(3))
        tracked = log
        tracked.append(backend.frame_count - before)
        return {"n": 1.0}

    counters.clear()
    d_grads = DWeightGrads(model.D) if "D" in model.networks else contextlib.nullcontext()
    with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True), d_grads:
        out = train(model, digits.train.x, cfg, tmp_path, runtime, seed=0, monitor=monitor)
    assert out["status"] == "ok", out
    if "D" in model.networks:  # one D weight gradient per D pass D's update differentiates, as on the plain path
        plain = build_model(cfg, name, digits.shape)
        with DWeightGrads(plain.D) as eager:
            train(plain, digits.train.x, cfg, tmp_path / "plain", Runtime("cpu", fast=False), seed=0)
        expected = expected_d_weight_grads(name, plain, STEPS)
        assert d_grads.count == eager.count == (expected or eager.count) > 0, (d_grads.count, eager.count, expected)
    with_params = {n for n, net in nets.items() if any(True for _ in net.parameters())}
    assert set(out["compiled"].split(",")) == with_params
    for n in ran:  # each network a training step calls has compiled code of its own forward
        assert _debug_get_cache_entry_list(_forward_code(nets[n])), (name, n)
    assert backend.frame_count >= len(ran)
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert tracked == [0, 0]  # tracking ran eager: nothing was compiled for it
    assert (out["compile_seconds"] > 0) == bool(ran)
    # released for evaluation and checkpoints: the plain class forwards again
    assert all("forward" not in vars(m) for m in model.modules())


@pytest.mark.slow
def test_compile_caches_start_fresh_for_each_model(digits):
    """Models share code objects (the shared blocks' forwards); without a reset per model their
    cache entries add up until the recompile limit silently turns compilation off."""
    cfg = load_config("digits", budget="smoke")
    runtime = Runtime("cpu", fast=False, compile=True, compile_backend="eager")  # caches only: no AOT tracing
    for _ in range(9):  # more than the recompile limit of 8
        model = build_model(cfg, "autoencoder", digits.shape)
        runtime.prepare(model)
        with torch._dynamo.config.patch(fail_on_recompile_limit_hit=True):
            model.G(model.sample_latent(4))
        assert len(_debug_get_cache_entry_list(_forward_code(model.G))) == 1
        runtime.release(model)


def test_precision_is_explicit_and_recorded():
    for fast in (False, True):
        runtime = Runtime("cpu", fast=fast)
        # PyTorch's default lets cuDNN convolutions use TF32; we say fp32 and mean it
        assert torch.backends.cudnn.conv.fp32_precision == "ieee"
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"
        p = runtime.describe()["precision"]
        assert (p["fp32_matmul"], p["fp32_conv"], p["autocast"]) == ("ieee", "ieee", "bf16" if fast else None)
        assert p["evaluation_fp32"] == "ieee"


def test_precision_policy_tf32_on_the_fast_path_of_tf32_gpus_only():
    assert fp32_mode(True, (8, 0)) == fp32_mode(True, (9, 0)) == "tf32"  # Ampere, Hopper
    assert fp32_mode(True, (7, 5)) == "ieee"  # Turing has no TF32
    assert fp32_mode(False, (9, 0)) == "ieee"  # the plain path is the IEEE reference
    assert fp32_mode(True, None) == "ieee"  # a CPU
    assert fp32_mode(True, (9, 0), tf32=False) == "ieee"  # --no-tf32


def test_training_and_evaluation_precision_switch(digits):
    """A runtime whose training takes TF32 (as on a GPU that has it) sets it for training only:
    evaluation, tracking and whatever runs before `prepare` stay IEEE fp32; a CPU run changes nothing."""
    cfg = load_config("digits", budget="smoke")
    runtime = Runtime("cpu", fast=True)
    runtime.fp32 = "tf32"  # what fp32_mode gives on the fast path of an Ampere or later GPU
    runtime.set_precision(training=False)
    assert torch.backends.cuda.matmul.fp32_precision == torch.backends.cudnn.conv.fp32_precision == "ieee"
    model = build_model(cfg, "autoencoder", digits.shape)
    runtime.prepare(model)
    assert torch.backends.cuda.matmul.fp32_precision == torch.backends.cudnn.conv.fp32_precision == "tf32"
    assert torch.backends.mkldnn.matmul.fp32_precision == torch.backends.mkldnn.conv.fp32_precision == "ieee"
    with runtime.evaluation():
        assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    assert torch.backends.cudnn.conv.fp32_precision == "tf32"
    runtime.release(model)
    assert torch.backends.cuda.matmul.fp32_precision == torch.backends.cudnn.conv.fp32_precision == "ieee"
    Runtime("cpu", fast=True)  # leaves the process as the other tests expect it
    assert Runtime("cpu", fast=True, tf32=True).fp32 == "ieee"  # asked for on a CPU: nothing to turn on


def test_compiled_graphs_are_cached_in_the_project_cache_unless_the_user_chose_a_folder(monkeypatch, tmp_path):
    """Every process and seed that compiles reads one Inductor cache under BIGAN_BENCH_CACHE;
    PyTorch's default (which importing torch._dynamo writes into the variable) is not a choice,
    a folder the user set is."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir as inductor_default

    from benchmarks.core.runtime import Runtime

    monkeypatch.setenv("BIGAN_BENCH_CACHE", str(tmp_path / "cache"))
    for before in (None, inductor_default()):
        if before is None:
            monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
        else:
            monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", before)
        Runtime("cpu", fast=False, compile=True)
        assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "cache" / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    Runtime("cpu", fast=False, compile=True)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "untouched"))
    Runtime("cpu", fast=False, compile=False)  # the plain path compiles nothing: nothing is set
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "untouched")
