"""Measurement scripts behind results/perf/toy2d/README.md, run from the repository root as
`python -m benchmarks.perf.toy2d.<script>`. What they share: toy2d's `full` config, its data and
the plain CPU runtime, as `run` builds them."""
from benchmarks.config import load_config
from benchmarks.core.runtime import Runtime
from benchmarks.data import load_dataset


def setup():
    """(cfg, data, runtime) for toy2d at the full budget on the CPU's plain path."""
    cfg = load_config("toy2d", "full")
    return cfg, load_dataset(cfg.dataset, **cfg.dataset_options), Runtime("cpu", fast=False, compile=False)
