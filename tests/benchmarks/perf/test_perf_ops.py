"""`perf --ops`: operators per training step counted from the profiler, on the plain path and
compiled (aot_eager here: the same graphs as inductor, no code generation)."""
import json

import pytest
import torch

from benchmarks.perf import ops
from tests.helpers import ROOT


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: one thread is faster


def test_views_and_allocations_launch_no_kernel():
    assert not ops.launches_kernel("aten::expand") and not ops.launches_kernel("aten::t")
    assert not ops.launches_kernel("aten::empty_strided") and not ops.launches_kernel("aten::view")
    assert ops.launches_kernel("aten::addmm") and ops.launches_kernel("aten::convolution_backward")
    assert ops.launches_kernel("aten::add_") and ops.launches_kernel("aten::_foreach_add_")


@pytest.mark.slow
def test_a_step_of_known_ops_is_counted_inside_and_outside_the_compiled_regions():
    """One compiled Linear (forward region, backward region) and eager glue around it."""
    lin = torch.nn.Linear(4, 3)
    fn = torch.compile(lin, backend="aot_eager")
    x = torch.randn(5, 4)
    fn(x).sum().backward()  # compiles

    def step():
        out = fn(x)  # inside: the forward graph's addmm
        (out * 2).sum().backward()  # outside: mul, sum, the backward's seed and gradient accumulation
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
        step()
    counts, region_us = ops.tally(prof.events(), 2)
    assert counts["regions"] == 2  # the compiled forward and its backward, per step
    assert counts["aten_in_regions"] >= 3  # addmm forward; mm and sum for the weight and bias gradients
    assert counts["aten_outside"] >= 3 and region_us > 0
    assert counts["ops"] == counts["aten_in_regions"] + counts["aten_outside"] + counts.get("fused_kernels", 0)


@pytest.mark.slow
def test_perf_ops_writes_a_table_per_model_plain_and_compiled(cli, tmp_path):
    code, out, err = cli("perf", "digits", "--ops", "--compile", "--compile-backend", "aot_eager", "--steps", "1",
                         "--models", "autoencoder,pca,random-init", "--out", tmp_path)
    assert code == 0, err
    record = json.loads((tmp_path / "cpu-ops.json").read_text())
    assert record["complete"] and [m["model"] for m in record["models"]] == ["autoencoder", "pca", "random-init"]
    ae = record["models"][0]
    assert ae["plain"]["ops"] > 20 and "regions" not in ae["plain"]
    # G and E forward and backward: four regions; the optimiser and the loss outside them
    assert ae["compiled"]["regions"] == 4 and ae["compiled"]["aten_in_regions"] > 0
    assert ae["compiled"]["aten_outside"] > 0 and 0 < ae["compiled"]["outside_share"] < 1
    idle = record["models"][2]["compiled"]  # random-init: E and G forward without autograd, still compiled regions
    assert idle["regions"] == 2 and idle["aten_in_regions"] > 0 and idle["outside_share"] < 1
    assert "| autoencoder | " in out and (tmp_path / "cpu-ops.md").read_text() == out.rstrip("\n") + "\n"


def test_gpu_busy_is_the_union_of_device_intervals_over_the_profiled_span():
    from types import SimpleNamespace as NS
    cuda, cpu = torch.autograd.DeviceType.CUDA, torch.autograd.DeviceType.CPU

    def event(kind, a, b):
        return NS(device_type=kind, time_range=NS(start=a, end=b))

    events = [event(cpu, 0, 40), event(cuda, 0, 10), event(cuda, 5, 15), event(cuda, 20, 30), event(cuda, 22, 24)]
    assert ops.device_busy(events, 2) == {"busy": 25 / 40, "device_events_per_step": 2.0}
    assert ops.device_busy([event(cpu, 0, 40)], 2) is None  # a CPU: no device events


@pytest.mark.slow
def test_perf_profiles_both_loops_when_asked(cli, tmp_path):
    code, out, err = cli("perf", "toy2d", "--models", "autoencoder", "--steps", "2", "--warmup", "1", "--profile", "2",
                         "--out", tmp_path)
    assert code == 0, err
    row = json.loads((tmp_path / "cpu.json").read_text())["training"][0]
    assert row["profile"] == {side: {"steps": 2, "gpu_busy": None, "device_events_per_step": None}
                              for side in ("baseline", "harness")}
    assert "## Profile" in out and "| autoencoder |" in out.split("## Profile")[1]
    code, _, err = cli("perf", "toy2d", "--profile", "-1")
    assert code == 2 and "--profile" in err


@pytest.mark.slow
def test_dinov2_throughput_with_random_weights(monkeypatch):
    """Timed as evaluation takes the features; ViT-S/14 stands in for ViT-L/14 here (the same code, faster)."""
    import metrics
    from benchmarks.core.runtime import Runtime
    from benchmarks.data import load_dataset
    from benchmarks.perf import evaluation
    monkeypatch.setattr(metrics.dinov2, "MODEL", "dinov2-vit-s-14")
    monkeypatch.setattr(evaluation, "DINOV2_BATCH", {"cpu": 2})
    rate, label = evaluation.dinov2_speed(load_dataset("digits"), Runtime("cpu"), 2)
    assert rate > 0 and label.startswith("random weights") and "2 images (1, 16, 16)" in label


def test_the_gpu_check_script_is_valid_bash_and_its_commands_parse(tmp_path):
    """benchmarks/perf/gpu_check.sh with a stand-in python that records its arguments: every
    `python -m benchmarks` command it runs parses with the project's own parser, and the parts
    leave their log and archive in $OUT."""
    import subprocess

    from benchmarks.cli import build_parser

    script = ROOT / "benchmarks" / "perf" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    calls = tmp_path / "calls"
    fake = tmp_path / "python"
    fake.write_text('#!/bin/bash\n'
                    'for a in "$@"; do printf "%s\\037" "$a"; done >> "$CALLS"; printf "\\036" >> "$CALLS"\n')
    fake.chmod(0o755)
    env = {"PATH": "/usr/bin:/bin", "CALLS": str(calls), "PY": str(fake), "OUT": str(tmp_path / "out"),
           "GPU_CHECK_WORK": str(tmp_path / "work"), "GPU_CHECK_SECONDS": "3600"}
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    argvs = [c.split("\x1f")[:-1] for c in calls.read_text().split("\x1e") if c]
    commands = [a[2:] for a in argvs if a[:2] == ["-m", "benchmarks"]]
    parsed = [build_parser().parse_args(c) for c in commands]
    assert [p.command for p in parsed] == ["perf"] * 4 + ["run"] * 4 + ["sweep"]
    perf_models = parsed[0]
    assert perf_models.profile == 5 and not perf_models.eval_timing and "bigbigan" not in perf_models.models
    assert perf_models.capture and not parsed[1].capture  # captured steps, and the eager fast path beside them
    assert parsed[2].models == ["bigbigan"] and parsed[2].capture and parsed[3].eval_timing
    assert parsed[4].budget == "smoke" and parsed[4].data_root == str(tmp_path / "work" / "celeba")
    assert [p.tf32 for p in parsed[5:8]] == [None, None, False] and parsed[8].jobs == 4 and parsed[8].capture
    assert {"check.log", "gpu-check.tar.gz"} <= {p.name for p in (tmp_path / "out").iterdir()}
    assert len(list((tmp_path / "out").iterdir())) <= 8  # what a lent machine returns
    assert "skip" not in (tmp_path / "out" / "check.log").read_text()
    short = subprocess.run(["bash", str(script)], env={**env, "GPU_CHECK_SECONDS": "30", "OUT": str(tmp_path / "o2")},
                           capture_output=True, text=True, timeout=60)
    assert short.returncode == 0 and "skip perf-models" in (tmp_path / "o2" / "check.log").read_text()


def test_feature_precisions_warm_every_batch_shape_and_measure_the_distance_from_ieee():
    """perf's evaluation timing: each precision sees the full batch and the remainder before the
    timed pass, and reports how far its features and FD move from IEEE fp32's (on a CPU TF32 does
    not exist, so it moves nothing; bf16 moves something)."""
    from benchmarks.core.runtime import Runtime
    from benchmarks.perf import evaluation
    from benchmarks.perf.markdown import _precisions

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.Flatten(), torch.nn.Linear(8 * 14 * 14, 16))
    seen = []

    def features(x):  # in batches of 10, as metrics.inception_features cuts them
        seen.append(len(x))
        return torch.cat([net(x[i:i + 10].float() / 255) for i in range(0, len(x), 10)])

    images = torch.randint(0, 256, (25, 1, 16, 16), dtype=torch.uint8)
    modes = evaluation.feature_precisions(features, images, 10, Runtime("cpu"))
    assert list(modes) == ["ieee", "tf32", "bf16"]
    assert seen == [10, 5, 25] * 3  # every shape first, then the timed pass
    assert modes["tf32"]["max_rel_diff"] == 0 and modes["tf32"]["fd_shift"] == 0
    assert modes["bf16"]["max_rel_diff"] > 0 and all(m["images_per_s"] > 0 for m in modes.values())
    assert "bf16" in _precisions(modes) and "IEEE fp32 (the precision policy)" in _precisions(modes)
