import csv
import json

import pytest
import torch

import models
from benchmarks.config import load_config
from benchmarks.core.runtime import Runtime
from benchmarks.training.batches import BatchStream
from benchmarks.training.train import flop_counter, train
from tests.helpers import write_plugin

# What these tests check is the training harness: the report figures (test_report.py), the
# truncation sweep, the tracking curve and the reference rows (test_run_figures.py,
# test_reference_rows.py) are left out to keep the suite fast.
SMOKE = ("--budget", "smoke", "--no-figures", "--set", "eval.truncation=[]", "--set", "eval.track_every=0",
         "--set", "eval.references=false")


def test_batch_stream_is_a_per_seed_permutation_stream():
    a, b = BatchStream(10, seed=3), BatchStream(10, seed=3)
    first = torch.cat([a.next(4)[0] for _ in range(5)])  # 20 = two epochs, crossing boundaries
    assert torch.equal(first, torch.cat([b.next(7)[0], b.next(13)[0]]))  # same order whatever the chunking
    assert sorted(first[:10].tolist()) == list(range(10)) and sorted(first[10:].tolist()) == list(range(10))
    assert not torch.equal(first[:10], first[10:])  # a new permutation each epoch
    assert not torch.equal(first, torch.cat([BatchStream(10, seed=4).next(20)[0]]))
    resumed = BatchStream(10, seed=3, consumed=13)
    assert torch.equal(resumed.next(7)[0], first[13:])
    assert a.next(3)[1] is None  # no flips unless asked


def test_batch_stream_flips_are_per_example_and_epoch_and_leave_the_order_alone():
    plain, flipping = BatchStream(1000, seed=5), BatchStream(1000, seed=5, hflip=True)
    idx, flip = flipping.next(2000)
    assert torch.equal(idx, plain.next(2000)[0])  # flipping draws after the permutation
    assert 400 < int(flip[:1000].sum()) < 600
    by_example = [dict(zip(idx[e * 1000:(e + 1) * 1000].tolist(), flip[e * 1000:(e + 1) * 1000].tolist()))
                  for e in (0, 1)]
    assert by_example[0] != by_example[1]  # redrawn each epoch
    again = BatchStream(1000, seed=5, hflip=True, consumed=700)
    assert torch.equal(again.next(300)[1], flip[700:1000])  # resume continues the same flips


@pytest.mark.slow
def test_budget_accounting_follows_the_declared_schedule(tmp_path, cli):
    plugin = write_plugin(tmp_path / "sched.py", '''
@models.register("three-batch-gan")
class ThreeBatch(BiGAN):
    batches_per_step = 3
    d_steps_per_step = 2
    def train_step(self, batch, step):
        assert batch.shape[0] == 3 * 64
        return super().train_step(batch[:64], step)
''')
    code, _, err = cli("run", "digits", *SMOKE, "--models", "three-batch-gan,bigan", "--plugin", plugin, "--out", "r")
    assert code == 0, err
    rows = {r["model"]: r for r in csv.DictReader(open("r/summary.csv"))}
    assert rows["three-batch-gan"]["g_steps"] == rows["bigan"]["g_steps"] == "30"
    assert rows["three-batch-gan"]["d_steps"] == "60" and rows["bigan"]["d_steps"] == "30"
    assert rows["three-batch-gan"]["images_seen"] == str(30 * 3 * 64) and rows["bigan"]["images_seen"] == str(30 * 64)
    for r in rows.values():
        assert float(r["train_seconds"]) > 0
        assert int(r["params_g"]) > 0 and int(r["params_e"]) > 0 and int(r["params_d"]) > 0


@pytest.mark.slow
def test_bigan_end_to_end_writes_summary_with_real_numbers(cli):
    code, out, err = cli("run", "digits", *SMOKE, "--models", "bigan", "--out", "r")
    assert code == 0, err
    row = next(csv.DictReader(open("r/summary.csv")))
    for col in ("model", "seed", "status", "g_steps", "d_steps", "images_seen", "train_seconds",
                "params_g", "params_e", "params_d", "recon_mse", "probe_acc"):
        assert row[col] != "", col
    assert row["status"] == "ok" and 0 < float(row["recon_mse"]) < 1 and 0.1 < float(row["probe_acc"]) <= 1
    run = "r/bigan/seed0/"
    for f in ("config.json", "metrics.json", "losses.csv", "checkpoint.pt", "samples.png", "recon.png"):
        assert (tmp := __import__("pathlib").Path(run + f)).exists() and tmp.stat().st_size > 0, f
    assert "Results: r" in out and out.count("ok/runs") == 1  # the compact table, printed once
    line = next(ln for ln in out.splitlines() if ln.startswith("bigan "))
    assert "1/1" in line and f"{float(row['recon_mse']):.4g}" in line  # a headline metric
    assert "table.md" not in out and "| bigan |" in open("r/table.md").read()  # the full table stays in the files
    assert json.load(open(run + "config.json"))["config"]["model_args"]["lr"] == 2e-4


INTERRUPT = '''
import os
@models.register("NAME")
class InterruptGAN(BiGAN):
    def train_step(self, batch, step):
        flag = os.environ.get("INTERRUPT_FLAG")
        if step == 15 and flag and os.path.exists(flag):
            os.remove(flag)
            raise KeyboardInterrupt
        return super().train_step(batch, step)
'''


@pytest.mark.slow
def test_interrupted_run_resumes_to_the_same_result(tmp_path, cli, monkeypatch):
    plugin = write_plugin(tmp_path / "interrupt.py", INTERRUPT.replace("NAME", "interrupt-gan"))
    args = ("run", "digits", *SMOKE, "--models", "interrupt-gan", "--plugin", plugin,
            "--set", "train.steps=20", "--set", "train.checkpoint_every=10")
    flag = tmp_path / "flag"
    flag.write_text("1")
    monkeypatch.setenv("INTERRUPT_FLAG", str(flag))
    code, _, err = cli(*args, "--out", "a")
    assert code == 130 and "resume" in err
    run = tmp_path / "a/interrupt-gan/seed0"
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 10
    assert not (run / "metrics.json").exists()

    first = json.loads((run / "config.json").read_text())
    code, _, err = cli(*args, "--out", "a")  # the same command resumes
    assert code == 0, err
    rec = json.loads((run / "config.json").read_text())  # how it was first started stays; the resume is added
    assert rec["started"] == first["started"] and "resumed" not in first
    assert [r["command"] for r in rec["resumed"]] == [first["command"]]
    assert "resumed or evaluated again: 1 of 1 runs" in open("a/table.md").read()
    code, _, err = cli(*args, "--out", "b")  # an uninterrupted twin
    assert code == 0, err
    resumed = torch.load(run / "checkpoint.pt", weights_only=False)
    straight = torch.load(tmp_path / "b/interrupt-gan/seed0/checkpoint.pt", weights_only=False)
    assert resumed["step"] == straight["step"] == 20
    for k, v in straight["model"].items():
        assert torch.equal(v, resumed["model"][k]), k
    steps = [int(r["step"]) for r in csv.DictReader(open(run / "losses.csv"))]
    assert steps == sorted(set(steps)) and steps[-1] == 19  # no step logged twice


def test_resume_with_changed_config_is_refused(tmp_path, cli, monkeypatch):
    plugin = write_plugin(tmp_path / "interrupt2.py", INTERRUPT.replace("NAME", "interrupt-gan-2"))
    base = ("run", "digits", *SMOKE, "--models", "interrupt-gan-2", "--plugin", plugin, "--out", "a",
            "--set", "train.checkpoint_every=10")
    flag = tmp_path / "flag"
    flag.write_text("1")
    monkeypatch.setenv("INTERRUPT_FLAG", str(flag))
    assert cli(*base, "--set", "train.steps=20")[0] == 130
    ckpt = (tmp_path / "a/interrupt-gan-2/seed0/checkpoint.pt").read_bytes()
    code, _, err = cli(*base, "--set", "train.steps=30")
    assert code == 2 and "different config" in err and "train.steps: 20 -> 30" in err
    assert (tmp_path / "a/interrupt-gan-2/seed0/checkpoint.pt").read_bytes() == ckpt


@pytest.mark.slow
def test_diverged_run_is_marked_and_the_benchmark_goes_on(tmp_path, cli):
    plugin = write_plugin(tmp_path / "nan.py", '''
@models.register("nan-gan")
class NanGAN(BiGAN):
    def train_step(self, batch, step):
        out = super().train_step(batch, step)
        if step >= 5:
            out["loss_d"] = math.nan
        return out
''')
    code, out, err = cli("run", "digits", *SMOKE, "--models", "nan-gan,bigan", "--plugin", plugin, "--out", "r")
    assert code == 0, err
    rows = {r["model"]: r for r in csv.DictReader(open("r/summary.csv"))}
    assert rows["nan-gan"]["status"] == "diverged" and rows["nan-gan"]["g_steps"] == "5"
    assert rows["nan-gan"]["recon_mse"] == ""  # no metrics from a diverged model
    assert json.load(open("r/nan-gan/seed0/metrics.json"))["diverged_at"] == 5
    assert rows["bigan"]["status"] == "ok"
    assert "| nan-gan | 1 | 0 | 1 | 0 |" in open("r/table.md").read()  # counted in the per-model table
    assert any(ln.startswith("nan-gan") and "0/1" in ln for ln in out.splitlines())


@pytest.mark.slow
def test_the_references_are_written_before_the_first_run_trains(tmp_path, cli):
    """A matrix stopped part-way (a study's final phase runs for hours) already holds its
    model-free references: they are written before the first run trains, not after the last."""
    plugin = write_plugin(tmp_path / "refs.py", """
import pathlib

@models.register("refs-gan")
class RefsGAN(BiGAN):
    def train_step(self, batch, step):
        assert pathlib.Path("r/references.json").is_file(), "references.json is not written yet"
        return super().train_step(batch, step)
""")
    assert SMOKE[-1] == "eval.references=false"
    code, _, err = cli("run", "digits", *SMOKE[:-2], "--models", "refs-gan", "--plugin", plugin, "--out", "r")
    assert code == 0 and "[refs-gan seed 0] ok" in err, err


@pytest.mark.slow
def test_crashing_model_is_recorded_as_failed(tmp_path, cli):
    plugin = write_plugin(tmp_path / "crash.py", '''
@models.register("crash-gan")
class CrashGAN(BiGAN):
    def train_step(self, batch, step):
        raise RuntimeError("boom")
''')
    code, _, _ = cli("run", "digits", *SMOKE, "--models", "crash-gan,bigan", "--plugin", plugin, "--out", "r")
    assert code == 1
    rows = {r["model"]: r for r in csv.DictReader(open("r/summary.csv"))}
    assert rows["crash-gan"]["status"] == "failed" and rows["bigan"]["status"] == "ok"
    assert "boom" in (tmp_path / "r/crash-gan/seed0/error.txt").read_text()
    code, _, err = cli("run", "digits", *SMOKE, "--models", "crash-gan", "--plugin", plugin, "--out", "r")
    assert code == 1 and "[crash-gan seed 0] failed" in err  # retried, not skipped


@pytest.mark.slow
def test_finished_runs_are_skipped_unless_forced(cli):
    assert cli("run", "digits", *SMOKE, "--models", "bigan", "--out", "r")[0] == 0
    first = open("r/bigan/seed0/metrics.json").read()
    code, _, err = cli("run", "digits", *SMOKE, "--models", "bigan", "--out", "r")
    assert code == 0 and "[bigan seed 0] skipped (1 of the 1 runs)" in err
    assert open("r/bigan/seed0/metrics.json").read() == first
    # Mark the finished record: a forced run must write a new one (wall times can coincide).
    record = json.loads(first) | {"marker": "from the first run"}
    open("r/bigan/seed0/metrics.json", "w").write(json.dumps(record))
    code, _, err = cli("run", "digits", *SMOKE, "--models", "bigan", "--out", "r", "--force")
    assert code == 0 and "[bigan seed 0] ok" in err
    assert "marker" not in json.loads(open("r/bigan/seed0/metrics.json").read())



@pytest.mark.slow
def test_a_model_option_added_since_a_run_started_takes_its_default(cli):
    """Runs recorded before a model gained an option are still the same runs (options are added
    with the old behaviour as default); a recorded value that differs is still refused."""
    assert cli("run", "digits", *SMOKE, "--models", "ali", "--out", "r")[0] == 0
    path = "r/ali/seed0/config.json"
    rec = json.loads(open(path).read())
    del rec["config"]["model_args"]["random_hparams"]  # as written before the option existed
    open(path, "w").write(json.dumps(rec))
    code, _, err = cli("run", "digits", *SMOKE, "--models", "ali", "--out", "r")
    assert code == 0 and "[ali seed 0] skipped" in err
    rec["config"]["model_args"]["random_hparams"] = True
    open(path, "w").write(json.dumps(rec))
    code, _, err = cli("run", "digits", *SMOKE, "--models", "ali", "--out", "r")
    assert code == 2 and "random_hparams: True -> False" in err


# --- FLOPs per phase: train() on tiny models, without the CLI's evaluation ---------------------

TINY = dict(data_shape=(1, 16, 16), z_dim=8, width=8, total_steps=10)
# train() reads the config's train section and eval.track_every; the rest is digits' smoke budget.
TINY_CFG = load_config("digits", budget="smoke", overrides=["train.steps=10", "train.batch_size=8", "train.hflip=false",
                                                           "train.checkpoint_every=3", "train.log_every=1",
                                                           "eval.track_every=0"])


def _tiny_x():
    return torch.rand(40, *TINY["data_shape"], generator=torch.Generator().manual_seed(0)) * 2 - 1


def _train(cls, run_dir):
    """(model, spend record) of 10 steps of `cls` at batch 8, checkpoints at steps 3, 6 and 9."""
    runtime = Runtime("cpu", fast=False, compile=False)
    runtime.seed_everything(0)
    model = cls(**TINY)
    run_dir.mkdir(exist_ok=True)
    return model, train(model, _tiny_x(), TINY_CFG, run_dir, runtime, seed=0)


def test_the_posthoc_encoders_phases_are_costed_apart(tmp_path):
    model, out = _train(models.get("gan-posthoc-encoder"), tmp_path / "r")  # steps 0-7 GAN, 8-9 E only
    by_phase = out["flops_by_phase"]
    assert set(by_phase) == {"gan", "posthoc"}
    for phase, step, steps in (("gan", 0, 8), ("posthoc", 8, 2)):  # each phase's step, counted again
        with flop_counter() as counter:
            model.train_step(_tiny_x()[:8], step)
        assert by_phase[phase] == steps * counter.get_total_flops() > 0, phase
    assert out["train_flops"] == sum(by_phase.values()) < 10 * by_phase["gan"] / 8  # E-only steps cost less
    assert out["flops_per_step"] == out["train_flops"] / 10


def test_a_row_that_trains_nothing_costs_no_flops(tmp_path):
    _, out = _train(models.get("random-init"), tmp_path / "r")
    assert out["train_flops"] == out["flops_per_step"] == 0 and out["flops_by_phase"] == {"train": 0}
    ckpt_path = tmp_path / "r/checkpoint.pt"  # a finished run evaluated again, from a checkpoint
    ckpt = torch.load(ckpt_path, weights_only=False)  # written before phases, which charged the loss-log forward
    del ckpt["phase_flops"]
    ckpt["flops_per_step"] = 1.5e8
    torch.save(ckpt, ckpt_path)
    assert _train(models.get("random-init"), tmp_path / "r")[1]["train_flops"] == 0


def test_pca_is_charged_its_eigendecomposition(tmp_path):
    _, out = _train(models.get("pca"), tmp_path / "r")
    d = 16 * 16
    # x^T x per step, counted; 9 d^3 for the decomposition, which FlopCounterMode does not see
    assert out["flops_by_phase"] == {"train": 10 * 2 * 8 * d * d, "eigendecomposition": 9 * d ** 3}
    assert out["train_flops"] == sum(out["flops_by_phase"].values())


@pytest.mark.parametrize("saved", ["phase_flops", "flops_per_step"])
def test_a_resumed_run_is_charged_the_flops_of_an_uninterrupted_one(tmp_path, saved):
    posthoc = models.get("gan-posthoc-encoder")
    _, straight = _train(posthoc, tmp_path / "straight")

    class StopAt9(posthoc):
        def train_step(self, batch, step):
            if step == 9:
                raise KeyboardInterrupt
            return super().train_step(batch, step)

    with pytest.raises(KeyboardInterrupt):
        _train(StopAt9, tmp_path / "resumed")
    ckpt_path = tmp_path / "resumed/checkpoint.pt"
    ckpt = torch.load(ckpt_path, weights_only=False)
    assert ckpt["step"] == 9 and set(ckpt["phase_flops"]) == {"gan", "posthoc"}
    if saved == "flops_per_step":  # a checkpoint written before phases: one count, made at step 0
        ckpt["flops_per_step"] = ckpt.pop("phase_flops")["gan"]
        torch.save(ckpt, ckpt_path)
    _, resumed = _train(posthoc, tmp_path / "resumed")
    assert resumed["g_steps"] == 10 and resumed["flops_by_phase"] == straight["flops_by_phase"]
    assert resumed["train_flops"] == straight["train_flops"]


def test_train_seconds_count_the_steps_not_tracking_or_checkpoint_writes(tmp_path, monkeypatch):
    """On a clock that moves only when something runs: 1 s per step, 100 s per tracking call,
    1000 s per checkpoint write; train_seconds, in the record and in each checkpoint, sees the steps."""
    from types import SimpleNamespace

    import benchmarks.training.train as train_module

    now = [0.0]
    monkeypatch.setattr(train_module, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    saved, save = [], train_module.atomic_torch_save

    def slow_save(state, path):
        saved.append((state["step"], state["train_seconds"]))
        now[0] += 1000
        save(state, path)

    monkeypatch.setattr(train_module, "atomic_torch_save", slow_save)

    class OneSecondSteps(models.get("random-init")):
        def train_step(self, batch, step):
            now[0] += 1
            return super().train_step(batch, step)

    def monitor(model):
        now[0] += 100
        return {"score": 0.0}

    runtime = Runtime("cpu", fast=False, compile=False)
    cfg = TINY_CFG.replace(eval=TINY_CFG.eval.replace(track_every=2))
    out = train(OneSecondSteps(**TINY), _tiny_x(), cfg, tmp_path, runtime, seed=0, monitor=monitor)
    assert out["train_seconds"] == 10
    assert saved == [(3, 3), (6, 6), (9, 9), (10, 10)]


def test_train_seconds_leave_compilation_out_and_old_checkpoints_are_read(tmp_path, monkeypatch):
    """On a fake clock: 1 s per step, and steps 2 and 5 compile for 50 s each (as torch.compile's
    own clock tells). train_seconds are the 10 steps, compile_seconds the 100 s beside them, in the
    record and in each checkpoint; a checkpoint written before compilation was counted apart (its
    train_seconds included it) resumes with the compilation taken out."""
    from types import SimpleNamespace

    import benchmarks.training.train as train_module

    now, compiled = [0.0], [0.0]
    monkeypatch.setattr(train_module, "time", SimpleNamespace(perf_counter=lambda: now[0]))
    saved, save = [], train_module.atomic_torch_save

    def record_save(state, path):
        saved.append((state["step"], state["train_seconds"], state["compile_seconds"]))
        save(state, path)

    monkeypatch.setattr(train_module, "atomic_torch_save", record_save)

    class CompilingSteps(models.get("random-init")):
        def train_step(self, batch, step):
            now[0] += 1 + 50 * (step in (2, 5))
            compiled[0] += 50 * (step in (2, 5))
            return super().train_step(batch, step)

    class CompilingRuntime(Runtime):
        def prepare(self, model):
            super().prepare(model)
            return ["G"]  # as if G were compiled: the stopwatch counts compilation apart

        def compile_seconds(self):
            return compiled[0]

    runtime = CompilingRuntime("cpu", fast=False, compile=False)
    out = train(CompilingSteps(**TINY), _tiny_x(), TINY_CFG, tmp_path / "new", runtime, seed=0)
    assert (out["train_seconds"], out["compile_seconds"], out["train_seconds_exclude_compile"]) == (10, 100, True)
    assert saved == [(3, 3, 50), (6, 6, 100), (9, 9, 100), (10, 10, 100)]

    ckpt = tmp_path / "new" / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=False)
    state.update(step=6, train_seconds=106.0, compile_seconds=100.0)  # an old checkpoint: compilation inside
    del state["train_seconds_exclude_compile"]
    torch.save(state, ckpt)
    (tmp_path / "new" / "losses.csv").write_text("step\n")
    out = train(CompilingSteps(**TINY), _tiny_x(), TINY_CFG, tmp_path / "new", runtime, seed=0)
    assert (out["train_seconds"], out["compile_seconds"]) == (10, 100)
