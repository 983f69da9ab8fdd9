import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Parallel workers (tox runs `pytest -n auto`) take one core each instead of all of them
    # competing for every core: PyTorch's OpenMP pool and the BLAS pools of numpy and
    # scikit-learn, whose idle threads spin. Set before they load (they read it once), and
    # inherited by the processes tests start.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402
from torch._inductor.runtime.cache_dir_utils import default_cache_dir as inductor_cache_dir  # noqa: E402

from benchmarks.cli import main  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


SHARED = ("domain", "references")


@pytest.fixture(scope="session")
def _shared_caches(tmp_path_factory):
    """Under pytest-xdist every worker is its own session; their base folders share a parent,
    so the caches live there and each classifier is trained once per test run, not per worker
    (two workers that miss at once both write it, atomically, with the same content)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent / "shared-caches" if os.environ.get("PYTEST_XDIST_WORKER") else base / "shared-caches"
    out = {}
    for name in SHARED:
        out[name] = root / name
        out[name].mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch, _shared_caches):
    """Every test gets its own cache and working folder, and no inherited data or weights paths. Only the
    domain classifiers and the model-free reference scores are shared within the session: each
    is computed once per dataset (its cache key names the data and the recipe), where every
    evaluating test would otherwise recompute it."""
    cache = tmp_path / "cache"
    cache.mkdir()
    for name, shared in _shared_caches.items():
        (cache / name).symlink_to(shared, target_is_directory=True)
    # Compiled graphs (runtime.py keeps Inductor's cache under BIGAN_BENCH_CACHE): PyTorch's
    # machine-wide folder, so compiling tests reuse what earlier tests and test runs compiled.
    (cache / "inductor").symlink_to(inductor_cache_dir(), target_is_directory=True)
    monkeypatch.setenv("BIGAN_BENCH_CACHE", str(cache))
    for var in ("BIGAN_BENCH_DATA", "CELEBA_ROOT", "BIGAN_BENCH_LPIPS_WEIGHTS", "BIGAN_BENCH_DINOV2_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""

    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def write_plugin(path, body):
    path.write_text("import math\nimport torch\nimport models\nfrom models.bigan import BiGAN\n\n" + body)
    return path
