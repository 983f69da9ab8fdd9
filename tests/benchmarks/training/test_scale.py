"""Scaling out: sharded benchmark matrices merge into one table, and a data-parallel run on two
processes (torchrun, gloo) trains like one process with the same global batch."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.core.errors import ConfigError
from benchmarks.training.shards import parse_shard, shard_matrix
from tests.helpers import ROOT


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 30])
def test_shards_cover_the_matrix_exactly_once(n):
    names, seeds = [f"m{i}" for i in range(9)], [0, 1, 2]
    parts = [shard_matrix(names, seeds, (i, n)) for i in range(1, n + 1)]
    flat = [p for part in parts for p in part]
    assert sorted(flat) == sorted(shard_matrix(names, seeds)) and len(flat) == 27
    assert max(map(len, parts)) - min(map(len, parts)) <= 1  # balanced
    assert parts == [shard_matrix(names, seeds, (i, n)) for i in range(1, n + 1)]  # deterministic


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_bad_shard_is_a_config_error(text):
    with pytest.raises(ConfigError, match="--shard"):
        parse_shard(text)


@pytest.mark.slow
def test_a_shard_runs_only_its_part_and_report_merges_shard_folders(cli):
    common = ("toy2d", "--budget", "smoke", "--no-figures", "--models", "autoencoder", "--seeds", "0,1",
              "--set", "train.steps=5", "--set", "eval.truncation=[]")
    code, _, err = cli("run", *common, "--shard", "2/2", "--out", "part2")
    assert code == 0, err
    assert [p.parent.name for p in Path("part2").glob("*/seed*/metrics.json")] == ["seed1"]
    first = Path("part1/autoencoder/seed0")  # shard 1/2, as another machine would have written it
    first.mkdir(parents=True)
    (Path("part1") / "benchmark.json").write_text(Path("part2/benchmark.json").read_text())
    row = json.loads(Path("part2/autoencoder/seed1/metrics.json").read_text())
    (first / "metrics.json").write_text(json.dumps({**row, "seed": 0}))
    code, out, err = cli("report", "part1", "part2", "--out", "merged")
    assert code == 0, err
    rows = list(csv.DictReader(open("merged/table.csv")))
    assert [(r["model"], r["runs"], r["ok"]) for r in rows] == [("autoencoder", "2", "2")]


ARGS = ("toy2d", "--budget", "smoke", "--no-figures", "--models", "bigan", "--device", "cpu", "--set", "train.steps=8",
        "--set", "train.log_every=1", "--set", "train.checkpoint_every=4", "--set", "eval.truncation=[]",
        "--set", "eval.track_every=8", "--set", "eval.track_samples=200")  # tracking: rank 0 alone evaluates


@pytest.mark.slow
def test_two_process_data_parallel_run_matches_one_process(tmp_path, cli):
    code, _, err = cli("run", *ARGS, "--out", "single")
    assert code == 0, err
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "benchmarks", "run", *ARGS, "--out", "ddp"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]

    def losses(d):
        return list(csv.DictReader(open(tmp_path / d / "bigan" / "seed0" / "losses.csv")))

    a, b = losses("single"), losses("ddp")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [str(s) for s in range(8)]  # rank 0 alone wrote
    for ra, rb in zip(a, b):
        for k in set(ra) - {"mu_std"}:  # a std over rows: the mean of the processes' stds is not the global one
            assert float(ra[k]) == pytest.approx(float(rb[k]), rel=1e-3, abs=1e-4), (ra["step"], k)
    ma, mb = (json.load(open(tmp_path / d / "bigan" / "seed0" / "metrics.json")) for d in ("single", "ddp"))
    assert ma["images_seen"] == mb["images_seen"]  # the global batch is the configured batch
    assert mb["modes_3sigma"] == pytest.approx(ma["modes_3sigma"], abs=2)
    for col in ("precision_points", "recall_points", "coverage_points"):  # on the gathered samples, as modes are
        assert mb[col] == pytest.approx(ma[col], abs=0.05), col
    assert len(list(csv.DictReader(open(tmp_path / "ddp" / "bigan" / "seed0" / "track.csv")))) == 1
    cfg = json.load(open(tmp_path / "ddp" / "bigan" / "seed0" / "config.json"))
    assert cfg["runtime"]["processes"] == 2 and cfg["command"].startswith("torchrun")
    precision = cfg["runtime"]["precision"]  # the run record says what fp32 meant
    assert (precision["fp32_matmul"], precision["fp32_conv"], precision["autocast"]) == ("ieee", "ieee", None)


@pytest.mark.slow
def test_compiled_networks_under_two_process_data_parallel(tmp_path):
    """Compiled networks inside DDP, on CPU/gloo: networks without batch norm are compiled, the
    others stay eager, and the fp32 losses equal a single-process eager run's (bf16 rounding
    would hide a wrong update; the fast path's bf16 is checked in test_fast_path.py)."""
    from tests import ddp_worker

    ddp_worker.run(tmp_path / "single", "bigbigan", 4, fast=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "tests.ddp_worker", str(tmp_path / "ddp"), "bigbigan", "4", "plain", "aot_eager"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    record = json.loads((tmp_path / "ddp" / "record.json").read_text())
    assert record["compiled"] == "D"  # BigBiGAN's D has no batch norm; G, E and G_ema do
    assert record["runtime"]["processes"] == 2 and "batch norm stay eager" in record["runtime"]["compile_scope"]

    def losses(d):
        return list(csv.DictReader(open(tmp_path / d / "losses.csv")))

    a, b = losses("single"), losses("ddp")
    assert [r["step"] for r in a] == [r["step"] for r in b] == [str(s) for s in range(4)]
    for ra, rb in zip(a, b):
        for k in set(ra) - {"mu_std"}:  # a std over rows: the mean of the processes' stds is not the global one
            assert float(ra[k]) == pytest.approx(float(rb[k]), rel=1e-3, abs=1e-4), (ra["step"], k)


@pytest.mark.slow
def test_every_process_shares_the_sample_metrics_and_matches_one_process(tmp_path):
    """Under torchrun each process decodes its share of the generated batches (uneven: 3 and 2)
    and the shares are gathered in draw order, so FD, the classifier score and the truncation
    sweep equal the single-process evaluation of the same model."""
    from tests import ddp_worker

    one = ddp_worker.evaluate(tmp_path / "single", "ali")  # also caches the domain classifier
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "tests.ddp_worker", str(tmp_path / "ddp"), "ali", "eval"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    two = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    for k in ("fd_digits", "cs_digits", "recon_mse", "probe_acc", "semantic_recon"):
        assert two[k] == pytest.approx(one[k], rel=1e-6), k
    samples = [torch.load(tmp_path / d / "samples.pt") for d in ("single", "ddp")]
    torch.testing.assert_close(samples[1], samples[0], rtol=1e-5, atol=1e-6)  # all 500 rows, in draw order
    sweep = [(tmp_path / d / "truncation.csv").read_text() for d in ("single", "ddp")]
    assert sweep[0] == sweep[1] and sweep[0].count("\n") == 7  # header and 6 thresholds, written once


@pytest.mark.slow
def test_jobs_report_once_and_default_folder_is_runs(tmp_path):
    """--jobs 2 without --out: two shard processes write runs/toy2d-smoke (git ignores runs/,
    so a run never touches the committed results/), and the compact table is printed once."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "benchmarks", "run", "toy2d", "--budget", "smoke", "--models",
                           "autoencoder,bigan", "--jobs", "2", "--no-figures", "--set", "eval.truncation=[]"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("ok/runs") == 1 and done.stdout.count("Results: runs/toy2d-smoke") == 1
    assert "(1 of this shard's " in done.stderr  # each shard counts its own part of the matrix
    for name in ("autoencoder", "bigan"):
        assert json.loads((tmp_path / "runs/toy2d-smoke" / name / "seed0/metrics.json").read_text())["status"] == "ok"
    assert "runs/" in (ROOT / ".gitignore").read_text().splitlines()


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG is Linux's")
def test_jobs_shards_die_with_their_parent(tmp_path):
    """kill -9 of a --jobs parent takes its shard processes down too (no orphan keeps writing)."""
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, "-m", "benchmarks", "run", "digits", "--budget", "smoke", "--models",
                               "bigan,ali", "--jobs", "2", "--no-figures", "--set", "train.steps=100000"],
                              cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def children():
        kids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent.pid:  # field 4 of /proc/PID/stat: the parent's PID
                kids.append(int(stat.parent.name))
        return kids

    deadline = time.time() + 60
    while len(children()) < 2:
        assert time.time() < deadline, "the shard processes did not start"
        time.sleep(0.2)
    kids = children()
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    def alive(pid):  # running, not a zombie waiting to be reaped
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    deadline = time.time() + 20
    while any(alive(k) for k in kids):
        assert time.time() < deadline, "a shard outlived its parent"
        time.sleep(0.2)
