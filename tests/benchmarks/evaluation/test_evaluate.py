"""The harness writes every metric column, fills the Inception columns when weights are given,
and leaves them empty (never zero) with a reason when they are not."""
import json
from pathlib import Path

import pytest

COLUMNS = ("fd_digits", "cs_digits", "recon_mse", "latent_cycle_mse", "semantic_recon", "probe_acc",
           "probe_pool_acc", "knn_acc", "precision_digits", "recall_digits", "density_digits", "coverage_digits",
           "recon_fd_digits", "probe_acc_1", "probe_acc_10")


@pytest.mark.slow
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
        assert set(m["metric_seconds"]) >= {"probe_acc", "knn_acc", "generation", "probe_labels"}
        for col in ("precision_digits", "recall_digits", "coverage_digits"):
            assert 0 <= m[col] <= 1 and "500 generated vs 500 real train" in m["protocol"][col]
        assert m["density_digits"] >= 0 and m["recon_fd_digits"] > 0
        # the smoke budget's probe subset (500 items) has fewer than 100 of a class: that count is left out
        assert "probe_acc_100" not in m and "n = 100 left out" in m["protocol"]["probe_acc_labels"]
        assert 0 <= m["probe_acc_1_sd"] < 0.5 and "5 fixed label draws" in m["protocol"]["probe_acc_10"]
    assert "Inception metrics skipped" in err
    assert "LPIPS (recon_lpips_vgg16) left empty: skipped on a CPU" in err  # tests/metrics/test_backbones.py fills it
    assert m["protocol"]["recon_lpips_vgg16"].startswith("empty: skipped on a CPU") and "recon_lpips_vgg16" not in m
    refs = json.loads(Path("r/references.json").read_text())["values"]
    assert {"raw_probe_acc_1", "raw_probe_acc_10", "real_precision_digits", "real_coverage_digits"} <= set(refs)
    assert 0 < refs["real_recall_digits"] < 1  # the real-data ceiling is computed, not assumed to be 1
    table = Path("r/table.md").read_text()
    assert "fd_digits ↓" in table and "probe_pool_acc ↑" in table and "domain CNN trained on digits" in table
    assert "recon_fd_digits ↓" in table and "precision_digits ↑" in table and "probe_acc_10 ↑" in table
    assert "_sd" not in table.split("## Protocol")[0]  # a spread over draws is no metric column
    assert "| held-out real sample (ceiling) |" in table
    report = Path("r/report.md").read_text()  # the run's report draws its figures (tests elsewhere skip them)
    assert "](plots/bar_probe_acc.png)" in report and Path("r/plots/bar_probe_acc.png").stat().st_size > 1000
    for figure in ("fidelity_digits.png", "label_efficiency.png"):
        assert f"](plots/{figure})" in report and Path(f"r/plots/{figure}").stat().st_size > 1000


@pytest.mark.slow
def test_inception_columns_fill_in_with_a_weights_file(cli, random_weights):
    code, _, err = cli("run", "digits", "--budget", "smoke", "--models", "bigan", "--out", "r", "--no-figures",
                       "--fid-weights", random_weights, "--set", "eval.inception_samples=8",
                       "--set", "train.steps=5")
    assert code == 0, err
    m = json.loads(Path("r/bigan/seed0/metrics.json").read_text())
    for col in ("fid_8", "is_8", "kid_8", "precision_8", "recall_8", "density_8", "coverage_8"):
        assert isinstance(m[col], float), col
    assert "sha256" in m["protocol"]["fid_8"] and "8 generated vs 8 real" in m["protocol"]["precision_8"]
    assert "real_precision_8" in json.loads(Path("r/references.json").read_text())["values"]


def test_a_named_missing_weights_file_stops_before_training(cli, tmp_path):
    """A weights path the user named must load (#35): a missing one is refused with exit 2 before
    anything trains, naming the path and the fix, instead of leaving the columns empty."""
    code, _, err = cli("run", "digits", "--budget", "smoke", "--models", "bigan", "--out", "r", "--no-figures",
                       "--fid-weights", tmp_path / "nope.pth", "--set", "eval.inception_samples=8",
                       "--set", "train.steps=5")
    assert code == 2 and "nope.pth" in err and "--fid-weights" in err and "Traceback" not in err
    assert not Path("r/bigan/seed0/metrics.json").exists()


@pytest.mark.slow
def test_toy2d_writes_mode_coverage(cli):
    code, _, err = cli("run", "toy2d", "--budget", "smoke", "--models", "bigan,bigan-qp-full", "--out", "r",
                       "--no-figures")
    assert code == 0, err
    for model in ("bigan", "bigan-qp-full"):
        m = json.loads(Path(f"r/{model}/seed0/metrics.json").read_text())
        assert m["status"] == "ok" and m["recon_mse"] >= 0
        assert 0 <= m["modes_3sigma"] <= m["modes_nearest"] <= 25 and 0 <= m["high_quality"] <= 1
        assert "nearest centre" in m["protocol"]["modes_nearest"] and "3 std" in m["protocol"]["modes_3sigma"]
        chance = m["protocol"]["modes_chance"]
        assert "uniform noise over [-5.0, -5.0] to [5.0, 5.0], 1000 points: modes_nearest 25" in chance
        for col in ("precision_points", "recall_points", "coverage_points"):  # on the raw points
            assert 0 <= m[col] <= 1
            assert "1000 generated vs 1000 real train samples in the raw 2-D points" in m["protocol"][col]
        assert m["density_points"] >= 0 and {"probe_acc_1", "probe_acc_10"} <= set(m)
    refs = json.loads(Path("r/references.json").read_text())["values"]
    assert 0.5 < refs["real_precision_points"] <= 1 and 0.5 < refs["real_recall_points"] <= 1


@pytest.mark.slow
def test_references_follow_the_protocol_not_a_shared_cache_entry(cli, private_references):
    """Two protocols on the same data (another probe subset) get their own references, each folder's
    agree with its own probe note, and a damaged cache entry is recomputed, not trusted (in a
    references cache of this test's own: the shared one is read by every evaluating test)."""
    import os

    for out, extra in (("a", []), ("b", ["--set", "eval.probe_max_train=200"])):
        code, _, err = cli("run", "digits", "--budget", "smoke", "--models", "pca", "--out", out, "--no-figures",
                           "--set", "train.steps=5", *extra)
        assert code == 0, err
    ra, rb = (json.loads(Path(f"{d}/references.json").read_text()) for d in "ab")
    assert ra["key"] != rb["key"] and ra["values"]["raw_probe_acc"] != rb["values"]["raw_probe_acc"]
    for d, r in (("a", ra), ("b", rb)):
        note = json.loads(Path(f"{d}/pca/seed0/metrics.json").read_text())["protocol"]["probe_acc"]
        assert r["values"]["majority_acc"][0] == pytest.approx(float(note.rsplit(" ", 1)[1]), abs=5e-5)
        mean, low, high = r["values"]["raw_probe_acc"]
        assert 0 <= low < mean < high <= 1  # the test set's own sampling error
        table = Path(f"{d}/table.md").read_text()
        assert r["notes"]["references"] in table and "train mean image (floor)" in table
    entry = Path(os.environ["BIGAN_BENCH_CACHE"]) / "references" / f"{ra['key']}.json"
    entry.write_text("5")
    os.remove("a/references.json")
    with pytest.warns(UserWarning, match="Ignoring unreadable references cache file"):
        code, _, err = cli("run", "digits", "--budget", "smoke", "--models", "pca", "--out", "a", "--no-figures",
                           "--set", "train.steps=5")
    assert code == 0 and "[pca seed 0] skipped" in err, err
    assert json.loads(Path("a/references.json").read_text()) == ra and json.loads(entry.read_text()) == ra


def test_a_long_references_key_still_names_a_file():
    """Every backbone adds to the references key; past a file name's length its tail is hashed,
    distinct keys keep distinct files, and a short key is its own name."""
    from benchmarks.evaluation.references import MAX_STEM, cache_file_stem

    long_a, long_b = "references-" + "x" * 300 + "-a", "references-" + "x" * 300 + "-b"
    assert len(cache_file_stem(long_a)) <= MAX_STEM and cache_file_stem(long_a) != cache_file_stem(long_b)
    assert cache_file_stem("references-digits-short") == "references-digits-short"


def test_a_run_with_the_gpu_probe_back_end(cli, monkeypatch):
    """On CUDA the multi-label probes take the torch back end (L-BFGS), inside the evaluation's
    inference mode: a whole run with every probe forced onto it, on a CPU, scores every probe column."""
    import metrics
    for name in ("linear_probe", "label_efficiency"):
        real = getattr(metrics, name)
        monkeypatch.setattr(metrics, name, lambda *a, _real=real, **k: _real(*a, **{**k, "backend": "torch"}))
    code, _, err = cli("run", "digits", "--budget", "smoke", "--models", "pca", "--out", "r", "--no-figures",
                       "--set", "train.steps=5")
    assert code == 0, err
    assert not Path("r/pca/seed0/error.txt").exists()
    m = json.loads(Path("r/pca/seed0/metrics.json").read_text())
    assert 0 < m["probe_acc"] <= 1 and m["protocol"]["probe_acc"]
