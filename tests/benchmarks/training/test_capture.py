"""--capture replays each training step as one graph (a CUDA graph on a GPU; on a CPU an
emulation with a graph's rules: static index buffers, outputs overwritten by the next replay,
host state such as LR schedulers untouched by a replay, the step number frozen at capture).
On a CPU a captured run must train bit-for-bit like the eager one: every piece a GPU graph
relies on (warm-up, one graph per phase, the schedule reaching a replayed step through a
tensor learning rate, the losses copied out before the next replay) is exercised here."""
import csv
import json

import pytest
import torch

import models
from benchmarks.config import load_config
from benchmarks.core.graphs import StepGraph
from benchmarks.core.runtime import Runtime
from benchmarks.data import load_dataset
from benchmarks.training.build import build_model
from benchmarks.training.capture import WARMUP_STEPS
from benchmarks.training.train import train
from models.base import BidirectionalGAN

STEPS = 10
# one model per train_step (the four BiGAN-QP variants share one, as the two WGAN BiGANs do)
POINTS = ["bigan", "ali", "bigan-qp-simple", "bigan-wgan", "autoencoder", "gan-posthoc-encoder"]


def _run(benchmark, name, tmp_path, capture, overrides=(), **runtime_options):
    """Train `name` for STEPS steps into tmp_path, resuming what is there."""
    cfg = load_config(benchmark, budget="smoke", models=[name],
                      overrides=[f"train.steps={STEPS}", "train.log_every=1", "train.checkpoint_every=5",
                                 "eval.track_every=0", "train.batch_size=8", *overrides])
    data = load_dataset(cfg.dataset, **cfg.dataset_options)
    runtime = Runtime("cpu", capture=capture, **runtime_options)
    runtime.seed_everything(0)
    model = build_model(cfg, name, data.shape)
    out = train(model, data.train.x, cfg, tmp_path, runtime, seed=0)
    assert out["status"] == "ok"
    return model, runtime, list(csv.DictReader(open(tmp_path / "losses.csv"))), torch.load(
        tmp_path / "checkpoint.pt", weights_only=False)


def _phases(model):
    return {model.phase(s) for s in range(STEPS)}


# both phases of the post-hoc encoder and of BigBiGAN (G_ema a copy of G, then an average) long
# enough to be captured and replayed
POSTHOC = ["model_options.gan-posthoc-encoder.posthoc_fraction=0.5", "model_options.bigbigan.ema_start=5",
           "model_options.bigbigan.ema_ref_steps=0"]


@pytest.mark.parametrize("benchmark,name", [*(("toy2d", n) for n in POINTS), ("digits", "bigbigan")])
def test_captured_run_trains_bit_for_bit_like_the_eager_run(benchmark, name, tmp_path):
    eager, _, eager_log, eager_ckpt = _run(benchmark, name, tmp_path / "eager", capture=False, overrides=POSTHOC)
    model, runtime, log, ckpt = _run(benchmark, name, tmp_path / "captured", capture=True, overrides=POSTHOC)
    assert runtime.capture_blocker(model) is None
    assert log == eager_log
    assert ckpt["model"].keys() == eager_ckpt["model"].keys()
    assert all(torch.equal(ckpt["model"][k], eager_ckpt["model"][k]) for k in ckpt["model"])
    assert ckpt["step"] == STEPS and ckpt["consumed"] == eager_ckpt["consumed"]


def test_compiled_networks_inside_a_captured_step_train_like_the_uncaptured_compiled_run(tmp_path):
    """The GPU path's combination: compiled networks called inside the captured step (aot_eager
    traces the same graphs as inductor without generating code)."""
    compiled = {"compile": True, "compile_backend": "aot_eager"}
    _, _, eager_log, eager_ckpt = _run("toy2d", "bigan", tmp_path / "eager", capture=False, **compiled)
    _, _, log, ckpt = _run("toy2d", "bigan", tmp_path / "captured", capture=True, **compiled)
    assert log == eager_log
    assert all(torch.equal(ckpt["model"][k], eager_ckpt["model"][k]) for k in ckpt["model"])


def test_the_built_in_phases_and_schedule_are_exercised():
    """The comparison above crosses what a graph could get wrong: BiGAN's learning rate changes
    between replays, BigBiGAN and the post-hoc encoder change phase after their warm-up."""
    cfg = load_config("toy2d", budget="smoke", overrides=[f"train.steps={STEPS}", *POSTHOC])
    data = load_dataset(cfg.dataset, **cfg.dataset_options)
    bigan = build_model(cfg, "bigan", data.shape)
    lrs = [bigan.schedulers["d"].lr_lambdas[0](s) for s in range(STEPS)]
    assert len(set(lrs[WARMUP_STEPS + 1:])) > 1
    posthoc = build_model(cfg, "gan-posthoc-encoder", data.shape)
    assert _phases(posthoc) == {"gan", "posthoc"}
    assert sum(posthoc.phase(s) == "posthoc" for s in range(STEPS)) > WARMUP_STEPS + 1
    dcfg = load_config("digits", budget="smoke", overrides=[f"train.steps={STEPS}", *POSTHOC])
    bigbigan = build_model(dcfg, "bigbigan", load_dataset(dcfg.dataset, **dcfg.dataset_options).shape)
    assert [sum(bigbigan.phase(s) == p for s in range(STEPS)) > WARMUP_STEPS + 1 for p in ("ema-copy", "train")] == [
        True, True]


def test_every_built_in_trained_model_is_capturable():
    untrained = {"pca", "random-init"}  # PCA's step builds host tensors; random-init never steps
    builtin = [n for n in models.available() if models.get(n).__module__.startswith("models.")]  # not test plug-ins
    assert {n for n in builtin if not models.get(n).capturable} == untrained


class _StepDependent(BidirectionalGAN):
    """A model that breaks the promise: its update depends on `step` inside one phase."""
    networks = ("G", "E")
    capturable = True

    def __init__(self):
        super().__init__(data_shape=(2,), z_dim=2)
        self.G, self.E = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)

    def train_step(self, batch, step):
        with torch.no_grad():
            self.G.weight.add_(step)
        return {"w": self.G.weight.sum()}


def test_the_emulation_replays_the_captured_step_as_a_graph_would():
    """A replay runs what was captured: the step number frozen at capture, the outputs
    overwritten in place by the next replay, a scheduler's host counter not advanced."""
    model = _StepDependent()
    opt = torch.optim.SGD(model.G.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1)
    def step():
        opt.step()
        sched.step()
        return model.train_step(None, 7)

    graph = StepGraph("cpu", host_state=[sched]).capture(step)
    assert sched.last_epoch == 0
    first = graph.replay()["w"]
    kept = first.clone()
    second = graph.replay()["w"]
    assert second is first and not torch.equal(second, kept)  # the same static tensor, overwritten
    assert torch.allclose(second - kept, torch.tensor(7.0 * 4))  # step 7 again (not 8), on 4 weights
    assert sched.last_epoch == 0


def test_capture_is_declared_and_refused_with_reasons():
    model = _StepDependent()
    assert Runtime("cpu").capture_blocker(model) == "capture off (--capture)"
    assert Runtime("cpu", capture=True).capture_blocker(model) is None
    model.capturable = False
    assert "does not declare capturable" in Runtime("cpu", capture=True).capture_blocker(model)
    assert Runtime("cpu", capture=True).describe()["capture"].startswith("emulated")


def test_perf_with_capture_says_which_models_run_their_step_as_a_graph(cli, tmp_path):
    code, out, err = cli("perf", "toy2d", "--models", "autoencoder,pca", "--steps", "2", "--warmup", "1", "--capture",
                         "--out", tmp_path)
    assert code == 0, err
    rows = {r["model"]: r for r in json.loads((tmp_path / "cpu.json").read_text())["training"]}
    assert rows["autoencoder"]["captured"] == "graph" and "does not declare capturable" in rows["pca"]["captured"]
    table = out.split("## Training")[1]
    assert "harness step |" in table and "one graph (emulated on the CPU)" in table and "eager: PCA" in table


def test_a_captured_run_resumes_on_either_path_as_if_never_stopped(tmp_path, monkeypatch):
    """A checkpoint written by a captured run (tensor learning rates, a scheduler mid-schedule)
    resumes eagerly, and an eager checkpoint resumes captured, both ending where one eager run
    ends. The first session stops at step 7; its checkpoint is step 5's."""
    from benchmarks.training import train as loop

    _, _, whole_log, whole = _run("toy2d", "bigan", tmp_path / "whole", capture=False)
    real = loop.counted_step

    def stop_at_7(train_step, step, *args):
        if step == 7:
            raise KeyboardInterrupt
        return real(train_step, step, *args)

    for first, then in ((True, False), (False, True)):
        folder = tmp_path / f"{first}-{then}"
        monkeypatch.setattr(loop, "counted_step", stop_at_7)
        with pytest.raises(KeyboardInterrupt):
            _run("toy2d", "bigan", folder, capture=first)
        monkeypatch.setattr(loop, "counted_step", real)
        assert torch.load(folder / "checkpoint.pt", weights_only=False)["step"] == 5
        _, _, log, ckpt = _run("toy2d", "bigan", folder, capture=then)
        assert log == whole_log
        assert all(torch.equal(ckpt["model"][k], whole["model"][k]) for k in whole["model"])
