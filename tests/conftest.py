import os

import pytest
import torch

from benchmarks.cli import main

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Parallel workers (tox runs `pytest -n auto`) take one core each instead of all of them
    # competing for every core; the library's small convolutions use many threads poorly anyway.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def _domain_classifiers(tmp_path_factory):
    return tmp_path_factory.mktemp("domain-classifiers")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch, _domain_classifiers):
    """Every test gets its own cache and working folder, and no inherited data paths. Only the
    domain classifiers are shared within the session: each is trained once per dataset (its cache
    key names the data and the recipe), where every evaluating test would otherwise retrain it."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "domain").symlink_to(_domain_classifiers, target_is_directory=True)
    monkeypatch.setenv("BIGAN_BENCH_CACHE", str(cache))
    for var in ("BIGAN_BENCH_DATA", "CELEBA_ROOT"):
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
