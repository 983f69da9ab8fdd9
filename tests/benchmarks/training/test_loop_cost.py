"""The training loop adds bookkeeping, never work: a run of `train()` (FLOP-counted first step,
loss reads, log, checkpoints) ends bit-identical to a bare loop that feeds the model the same
examples through PyTorch's for-loop Adam, and what the loop trims for speed (batch views,
incremental log text, multi-tensor Adam) writes what it wrote before."""
import csv
import io
import json

import pytest
import torch

from benchmarks.config import load_config
from benchmarks.data import load_dataset
from benchmarks.training.build import build_model
from benchmarks.core.runtime import Runtime
from benchmarks.training.losses import LossLog
from benchmarks.training.train import train

STEPS = 30  # over 2000 toy2d smoke examples: epoch boundaries, inside a batch for BiGAN-QP's 300 rows


def _build(cfg, data, name, runtime):
    runtime.seed_everything(0)
    return build_model(cfg, name, data.shape)


@pytest.mark.parametrize("name", ["bigan", "ali", "bigan-qp-simple"])
def test_run_loop_trains_exactly_like_a_bare_loop(name, tmp_path):
    cfg = load_config("toy2d", budget="smoke", overrides=[f"train.steps={STEPS}", "train.log_every=1",
                                                            "train.checkpoint_every=10", "eval.track_every=0"])
    data = load_dataset(cfg.dataset, **cfg.dataset_options)
    runtime = Runtime("cpu")
    harness = _build(cfg, data, name, runtime)
    assert train(harness, data.train.x, cfg, tmp_path, runtime, seed=0)["status"] == "ok"

    bare = _build(cfg, data, name, runtime)
    for opt in bare.optimizers.values():  # the reference: one parameter at a time
        for group in opt.param_groups:
            group["foreach"] = False
    bare.train()
    n, per_step = len(data.train.x), bare.batches_per_step * cfg.train.batch_size
    # The data order written out: epoch e is randperm(n) from seed * 1_000_003 + e.
    order = torch.cat([torch.randperm(n, generator=torch.Generator().manual_seed(e))
                       for e in range(STEPS * per_step // n + 1)])
    logged = []
    for step in range(STEPS):
        rows = order[step * per_step:(step + 1) * per_step]
        out = bare.train_step(data.train.x[rows], step)
        logged.append({"step": str(step), **{k: f"{float(v):.6g}" for k, v in out.items()}})

    assert list(csv.DictReader(open(tmp_path / "losses.csv"))) == logged
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"]
    expected = bare.state_dict()
    assert saved.keys() == expected.keys()
    assert all(torch.equal(saved[k], expected[k]) for k in expected)


def test_incremental_log_writes_the_whole_file_as_before(tmp_path):
    log = LossLog(tmp_path / "losses.csv", 0)
    rows = []
    for step in range(7):
        values = {"loss_d": 0.5 + step, "loss_ge": 1 / (step + 1)}
        if step >= 4:
            values["extra"] = step  # a column that appears mid-run
        log.append(step, values)
        rows.append({"step": step, **{k: f"{v:.6g}" for k, v in values.items()}})
        if step % 2:
            log.flush()
    log.flush()
    buf = io.StringIO()
    w = csv.DictWriter(buf, ["step", "extra", "loss_d", "loss_ge"])
    w.writeheader()
    w.writerows(rows)
    assert (tmp_path / "losses.csv").read_bytes().decode() == buf.getvalue()
    resumed = LossLog(tmp_path / "losses.csv", 5)  # resumed at step 5: later rows dropped, file rewritten
    resumed.append(5, {"loss_d": 1.0, "loss_ge": 2.0})
    resumed.flush()
    assert [r["step"] for r in csv.DictReader(open(tmp_path / "losses.csv"))] == ["0", "1", "2", "3", "4", "5"]


@pytest.mark.slow
def test_perf_on_points_times_the_run_loop_against_a_hand_written_bigan(cli, tmp_path):
    code, out, err = cli("perf", "toy2d", "--models", "bigan", "--steps", "3", "--warmup", "1",
                         "--out", tmp_path / "perf")
    assert code == 0, err
    assert "## The run loop against a hand-written BiGAN" in out and "not applicable (the data are not images)" in out
    record = json.loads((tmp_path / "perf" / "cpu.json").read_text())
    sbs = record["run_loop_vs_plain"]
    assert sbs["steps"] == 3 and sbs["ratio"] > 0 and sbs["threads"] == torch.get_num_threads()


def test_perf_stopped_part_way_keeps_the_models_it_finished(cli, tmp_path, monkeypatch):
    from benchmarks.perf import perf
    real, calls = perf.harness_speed, []

    def stop_on_the_second(name, *args, **kwargs):  # as a time limit would, while the second model trains
        calls.append(name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(name, *args, **kwargs)

    monkeypatch.setattr(perf, "harness_speed", stop_on_the_second)
    code, _, _ = cli("perf", "toy2d", "--models", "bigan,autoencoder", "--steps", "2", "--warmup", "1",
                     "--out", tmp_path)
    assert code != 0
    record = json.loads((tmp_path / "cpu.json").read_text())
    assert [r["model"] for r in record["training"]] == ["bigan"] and record["complete"] is False
    assert "**Incomplete:**" in (tmp_path / "cpu.md").read_text()
