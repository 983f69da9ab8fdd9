import pytest

from benchmarks.cli import main


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Every test gets its own cache and working folder, and no inherited data paths."""
    monkeypatch.setenv("BIGAN_BENCH_CACHE", str(tmp_path / "cache"))
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
