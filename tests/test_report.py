"""`report` on a results folder written here by hand: the numbers in the tables, the marks, the
counts of failed runs, and every promised figure as a real PNG."""
import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

BENCH = {"config": {"benchmark": "digits", "budget": "quick", "dataset": "digits", "dataset_options": {},
                    "arch": {"style": "shared", "z_dim": 4, "width": 8}, "train": {"steps": 20, "batch_size": 8},
                    "eval": {"gen_samples": 100}}}
# model -> per seed: (status, recon_mse, probe_acc, fd_digits)
RUNS = {"good-gan": [("ok", 0.1, 0.5, 30.0), ("ok", 0.2, 0.6, 20.0), ("ok", 0.3, 0.7, 10.0)],
        "shaky-gan": [("ok", 0.4, 0.9, 50.0), ("diverged", None, None, None), ("failed", None, None, None)]}


def _csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def write_fixture(root, runs=RUNS):
    root.mkdir()
    (root / "benchmark.json").write_text(json.dumps(BENCH))
    rng = np.random.default_rng(0)
    for model, seeds in runs.items():
        for seed, (status, rec, probe, fd) in enumerate(seeds):
            d = root / model / f"seed{seed}"
            d.mkdir(parents=True)
            row = {"model": model, "seed": seed, "status": status, "g_steps": 20, "d_steps": 40,
                   "images_seen": 160, "train_seconds": 1.5, "params_g": 10, "params_e": 11, "params_d": 12}
            if status == "ok":
                row.update(recon_mse=rec, probe_acc=probe, fd_digits=fd)
                _csv(d / "losses.csv", [{"step": s, "loss_d": 1 / (s + 1), "loss_ge": s / 10} for s in range(0, 20, 5)])
                _csv(d / "track.csv", [{"step": s, "fd_digits": fd + 20 - s} for s in (9, 19)])
                _csv(d / "truncation.csv", [{"threshold": t, "fd_digits": fd + t, "cs_digits": 1 + t}
                                            for t in (0.5, 1.0, float("inf"))])
                for name in ("samples.png", "recon.png", "interp.png"):
                    Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(d / name)
            elif status == "failed":
                row["error"] = "RuntimeError: boom"
            (d / "metrics.json").write_text(json.dumps(row))
    return root


def _table(path):
    return {r["model"]: r for r in csv.DictReader(open(path))}


def test_means_stds_counts_and_best_marks(tmp_path, cli):
    write_fixture(tmp_path / "r")
    code, out, err = cli("report", tmp_path / "r")
    assert code == 0, err
    t = _table(tmp_path / "r/table.csv")
    good, shaky = t["good-gan"], t["shaky-gan"]
    assert abs(float(good["recon_mse_mean"]) - 0.2) < 1e-12 and abs(float(good["recon_mse_std"]) - 0.1) < 1e-12
    assert good["recon_mse_n"] == "3" and float(good["fd_digits_mean"]) == 20.0
    # only the finished run of shaky-gan is averaged; the others are counted
    assert (shaky["runs"], shaky["ok"], shaky["diverged"], shaky["failed"]) == ("3", "1", "1", "1")
    assert float(shaky["probe_acc_mean"]) == 0.9 and shaky["probe_acc_std"] == ""
    md = (tmp_path / "r/table.md").read_text()
    assert "recon_mse ↓" in md and "probe_acc ↑" in md and "fd_digits ↓" in md
    assert "**0.2 ± 0.1**" in md and "**20 ± 10**" in md and "**0.9**" in md  # lower, lower, higher is better
    assert "| shaky-gan | 3 | 1 | 1 | 1 |" in md
    assert r"\textbf{0.2 $\pm$ 0.1}" in (tmp_path / "r/table.tex").read_text()


def test_every_promised_figure_is_a_real_png(tmp_path, cli):
    write_fixture(tmp_path / "r")
    assert cli("report", tmp_path / "r")[0] == 0
    plots = tmp_path / "r/plots"
    expected = {"bar_recon_mse.png", "bar_probe_acc.png", "bar_fd_digits.png", "tradeoff.png", "curves_losses.png",
                "curves_fd_digits.png", "truncation.png", "samples.png", "recon.png", "interp.png"}
    assert expected <= {p.name for p in plots.glob("*.png")}
    for p in plots.glob("*.png"):
        with Image.open(p) as im:
            im.verify()
            assert im.format == "PNG" and 150 <= im.width <= 5000 and 150 <= im.height <= 5000, (p.name, im.size)
    report = (tmp_path / "r/report.md").read_text()
    for name in expected:
        assert f"(plots/{name})" in report
    assert "6 runs (1 diverged, 1 failed, 4 ok)" in report and "## Protocol" in report


def test_several_folders_merge_and_stale_figures_go(tmp_path, cli):
    write_fixture(tmp_path / "a", {"good-gan": RUNS["good-gan"]})
    write_fixture(tmp_path / "b", {"shaky-gan": RUNS["shaky-gan"]})
    (tmp_path / "a/plots").mkdir()
    (tmp_path / "a/plots/bar_gone_metric.png").write_bytes(b"old")
    code, _, err = cli("report", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "m")
    assert code == 0, err
    assert set(_table(tmp_path / "m/table.csv")) == {"good-gan", "shaky-gan"}
    assert (tmp_path / "m/plots/samples.png").exists()
    assert cli("report", tmp_path / "a")[0] == 0
    assert not (tmp_path / "a/plots/bar_gone_metric.png").exists()
