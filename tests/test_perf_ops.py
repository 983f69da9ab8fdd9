"""`perf --ops`: operators per training step counted from the profiler, on the plain path and
compiled (aot_eager here: the same graphs as inductor, no code generation)."""
import json

import pytest
import torch

from benchmarks.perf import ops


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_views_and_allocations_launch_no_kernel():
    assert not ops.launches_kernel("aten::expand") and not ops.launches_kernel("aten::t")
    assert not ops.launches_kernel("aten::empty_strided") and not ops.launches_kernel("aten::view")
    assert ops.launches_kernel("aten::addmm") and ops.launches_kernel("aten::convolution_backward")
    assert ops.launches_kernel("aten::add_") and ops.launches_kernel("aten::_foreach_add_")


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
    assert counts["regions"] == 2  # CompiledFunction and CompiledFunctionBackward per step
    assert counts["aten_in_regions"] >= 3  # addmm forward; mm and sum for the weight and bias gradients
    assert counts["aten_outside"] >= 3 and region_us > 0
    assert counts["ops"] == counts["aten_in_regions"] + counts["aten_outside"] + counts.get("fused_kernels", 0)


def test_perf_ops_writes_a_table_per_model_plain_and_compiled(cli, tmp_path):
    code, out, err = cli("perf", "digits", "--ops", "--compile", "--compile-backend", "aot_eager", "--steps", "1",
                         "--models", "autoencoder,pca", "--out", tmp_path)
    assert code == 0, err
    record = json.loads((tmp_path / "cpu-ops.json").read_text())
    assert record["complete"] and [m["model"] for m in record["models"]] == ["autoencoder", "pca"]
    ae = record["models"][0]
    assert ae["plain"]["ops"] > 20 and "regions" not in ae["plain"]
    # G and E forward and backward: four regions; the optimiser and the loss outside them
    assert ae["compiled"]["regions"] == 4 and ae["compiled"]["aten_in_regions"] > 0
    assert ae["compiled"]["aten_outside"] > 0 and 0 < ae["compiled"]["outside_share"] < 1
    assert "| autoencoder | " in out and (tmp_path / "cpu-ops.md").read_text() == out.rstrip("\n") + "\n"
