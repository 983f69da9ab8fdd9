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
from tests.helpers import link_shared_caches  # noqa: E402

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
    cache = link_shared_caches(tmp_path / "cache", _shared_caches)
    # Compiled graphs (runtime.py keeps Inductor's cache under BIGAN_BENCH_CACHE): PyTorch's
    # machine-wide folder, so compiling tests reuse what earlier tests and test runs compiled. It
    # must exist: Inductor's makedirs fails on a link to a missing folder (a fresh machine).
    os.makedirs(inductor_cache_dir(), exist_ok=True)
    (cache / "inductor").symlink_to(inductor_cache_dir(), target_is_directory=True)
    monkeypatch.setenv("BIGAN_BENCH_CACHE", str(cache))
    for var in ("BIGAN_BENCH_DATA", "CELEBA_ROOT", "BIGAN_BENCH_LPIPS_WEIGHTS", "BIGAN_BENCH_DINOV2_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def private_references(_isolated, tmp_path):
    """For a test that damages a references cache entry: an empty references cache of the test's
    own in place of the shared one, so no other test reads the damaged entry (nor prints its
    warning). The domain cache, which such a test only reads, stays shared."""
    link = tmp_path / "cache" / "references"
    link.unlink()
    link.mkdir()


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""

    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def one_thread():
    """For tiny nets, which are op-overhead bound: one thread is faster than two, and far faster
    than two threads on a busy 2-core machine (OpenMP barriers). A module opts in with
    `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    """A state dict of torch-fidelity's FeatureExtractorInceptionV3 architecture, randomly
    initialised: the constructor always loads weights, so it is built once with loading stubbed."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fe, "load_state_dict_from_url", lambda *a, **k: {})
        mp.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, strict=True: None)
        torch.manual_seed(0)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path_factory.mktemp("weights") / "random-inception.pth"
    torch.save(net.state_dict(), path)
    return path
