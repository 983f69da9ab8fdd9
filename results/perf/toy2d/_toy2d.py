"""What the scripts in this folder share: the repository on the import path, and toy2d's
`full` config, its data and the plain CPU runtime, as `run` builds them."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from benchmarks.config import load_config  # noqa: E402
from benchmarks.data import load_dataset  # noqa: E402
from benchmarks.runtime import Runtime  # noqa: E402


def setup():
    """(cfg, data, runtime) for toy2d at the full budget on the CPU's plain path."""
    cfg = load_config("toy2d", "full")
    return cfg, load_dataset(cfg["dataset"], **cfg["dataset_options"]), Runtime("cpu", fast=False, compile=False)
