"""The harness writes every metric column, fills the Inception columns when weights are given,
and leaves them empty (never zero) with a reason when they are not."""
import json
from pathlib import Path

from tests.test_inception import random_weights  # noqa: F401 - a fixture

COLUMNS = ("fd_digits", "cs_digits", "recon_mse", "latent_cycle_mse", "semantic_recon", "probe_acc",
           "probe_pool_acc", "knn_acc")


def test_digits_smoke_writes_every_metric(cli):
    code, out, err = cli("run", "digits", "--budget", "smoke", "--models", "bigan,ali", "--out", "r")
    assert code == 0, err
    for model in ("bigan", "ali"):
        m = json.loads(Path(f"r/{model}/seed0/metrics.json").read_text())
        for col in COLUMNS:
            assert isinstance(m[col], float), (model, col)
        assert 0 <= m["probe_acc"] <= 1 and m["fd_digits"] >= 0 and 1 <= m["cs_digits"] <= 10
        assert not any(k.startswith(("fid", "is_", "kid")) for k in m)  # no weights: no Inception columns
        assert "fd_digits" in m["protocol"] and "not FID" in m["protocol"]["fd_digits"]
        assert set(m["metric_seconds"]) >= {"probe_acc", "knn_acc", "generation"}
    assert "Inception metrics skipped" in err
    table = Path("r/table.md").read_text()
    assert "fd_digits ↓" in table and "probe_pool_acc ↑" in table and "domain CNN trained on digits" in table
    report = Path("r/report.md").read_text()  # the run's report draws its figures (tests elsewhere skip them)
    assert "](plots/bar_probe_acc.png)" in report and Path("r/plots/bar_probe_acc.png").stat().st_size > 1000


def test_inception_columns_fill_in_with_a_weights_file(cli, random_weights):  # noqa: F811
    code, _, err = cli("run", "digits", "--budget", "smoke", "--models", "bigan", "--out", "r", "--no-figures",
                       "--fid-weights", random_weights, "--set", "eval.inception_samples=8",
                       "--set", "train.steps=5")
    assert code == 0, err
    m = json.loads(Path("r/bigan/seed0/metrics.json").read_text())
    for col in ("fid_8", "is_8", "kid_8"):
        assert isinstance(m[col], float), col
    assert "sha256" in m["protocol"]["fid_8"]


def test_missing_weights_leave_the_columns_empty_with_a_reason(cli, tmp_path):
    code, _, err = cli("run", "digits", "--budget", "smoke", "--models", "bigan", "--out", "r", "--no-figures",
                       "--fid-weights", tmp_path / "nope.pth", "--set", "eval.inception_samples=8",
                       "--set", "train.steps=5")
    assert code == 0, err
    assert "Inception metrics left empty" in err and "nope.pth" in err
    m = json.loads(Path("r/bigan/seed0/metrics.json").read_text())
    assert not any(k.startswith(("fid", "is_", "kid")) for k in m)


def test_toy2d_writes_mode_coverage(cli):
    code, _, err = cli("run", "toy2d", "--budget", "smoke", "--models", "bigan,bigan-qp-full", "--out", "r", "--no-figures")
    assert code == 0, err
    for model in ("bigan", "bigan-qp-full"):
        m = json.loads(Path(f"r/{model}/seed0/metrics.json").read_text())
        assert m["status"] == "ok" and m["recon_mse"] >= 0
        assert 0 <= m["modes_3sigma"] <= m["modes_nearest"] <= 25 and 0 <= m["high_quality"] <= 1
        assert "nearest centre" in m["protocol"]["modes_nearest"] and "3 std" in m["protocol"]["modes_3sigma"]
        assert "uniform noise over [-5.0, -5.0] to [5.0, 5.0], 1000 points: modes_nearest 25" in m["protocol"]["modes_chance"]
