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


def test_references_follow_the_protocol_not_a_shared_cache_entry(cli):
    """Two protocols on the same data (another probe subset) get their own references, each folder's
    agree with its own probe note, and a damaged cache entry is recomputed, not trusted."""
    import os

    import pytest

    for out, extra in (("a", []), ("b", ["--set", "eval.probe_max_train=200"])):
        code, _, err = cli("run", "digits", "--budget", "smoke", "--models", "pca", "--out", out, "--no-figures",
                           "--set", "train.steps=5", *extra)
        assert code == 0, err
    ra, rb = (json.loads(Path(f"{d}/references.json").read_text()) for d in "ab")
    assert ra["key"] != rb["key"] and ra["values"]["raw_probe_acc"] != rb["values"]["raw_probe_acc"]
    for d, r in (("a", ra), ("b", rb)):
        note = json.loads(Path(f"{d}/pca/seed0/metrics.json").read_text())["protocol"]["probe_acc"]
        assert r["values"]["majority_acc"][0] == pytest.approx(float(note.rsplit(" ", 1)[1]), abs=5e-5)
        low, mean, high = r["values"]["raw_probe_acc"][1], r["values"]["raw_probe_acc"][0], r["values"]["raw_probe_acc"][2]
        assert 0 <= low < mean < high <= 1  # the test set's own sampling error
        table = Path(f"{d}/table.md").read_text()
        assert r["notes"]["references"] in table and "train mean image (floor)" in table
    entry = Path(os.environ["BIGAN_BENCH_CACHE"]) / "references" / f"{ra['key']}.json"
    entry.write_text("5")
    os.remove("a/references.json")
    code, _, err = cli("run", "digits", "--budget", "smoke", "--models", "pca", "--out", "a", "--no-figures",
                       "--set", "train.steps=5")
    assert code == 0 and "[pca seed 0] skipped" in err, err
    assert json.loads(Path("a/references.json").read_text()) == ra and json.loads(entry.read_text()) == ra
