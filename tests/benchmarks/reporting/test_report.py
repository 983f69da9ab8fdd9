"""`report` on a results folder written here by hand: the numbers in the tables, the intervals,
the pairwise tests and ranks, the marks, the counts of failed runs, and every promised figure as
a real PNG."""
import csv
import json

import numpy as np
import pytest
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


def write_fixture(root, runs=RUNS, extra=None):
    """`extra`: {model: fields added to each of its metrics.json rows}, e.g. other parameter counts."""
    root.mkdir()
    (root / "benchmark.json").write_text(json.dumps(BENCH))
    rng = np.random.default_rng(0)
    for model, seeds in runs.items():
        for seed, (status, rec, probe, fd) in enumerate(seeds):
            d = root / model / f"seed{seed}"
            d.mkdir(parents=True)
            row = {"model": model, "seed": seed, "status": status, "g_steps": 20, "d_steps": 40,
                   "images_seen": 160, "train_seconds": 1.5, "params_g": 10, "params_e": 11, "params_d": 12,
                   **(extra or {}).get(model, {})}
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


def _pairs(path):
    return {(r["metric"], r["model_a"], r["model_b"]): r for r in csv.DictReader(open(path))}


def test_means_intervals_counts_and_best_marks(tmp_path, cli):
    write_fixture(tmp_path / "r")
    code, out, err = cli("report", tmp_path / "r")
    assert code == 0, err
    t = _table(tmp_path / "r/table.csv")
    good, shaky = t["good-gan"], t["shaky-gan"]
    assert abs(float(good["recon_mse_mean"]) - 0.2) < 1e-12 and abs(float(good["recon_mse_std"]) - 0.1) < 1e-12
    assert good["recon_mse_n"] == "3" and float(good["fd_digits_mean"]) == 20.0
    # 0.1, 0.2, 0.3: mean 0.2, s 0.1, half-width t_{0.975,2} · 0.1/√3 = 4.302653 · 0.0577350 = 0.248414
    assert float(good["recon_mse_ci_low"]) == 0.0  # 0.2 - 0.248414 < 0: clipped to the range of an MSE
    assert abs(float(good["recon_mse_ci_high"]) - (0.2 + 0.248414)) < 1e-6
    assert abs(float(good["fd_digits_ci_high"]) - (20 + 248.414 / 10)) < 1e-4  # 30, 20, 10: s = 10
    # only the finished run of shaky-gan is averaged; the others are counted
    assert (shaky["runs"], shaky["ok"], shaky["diverged"], shaky["failed"]) == ("3", "1", "1", "1")
    assert float(shaky["probe_acc_mean"]) == 0.9 and shaky["probe_acc_std"] == ""
    # one seed: no interval, no test against anyone, no rank; the 3-seed model ranks first alone
    assert (shaky["probe_acc_ci_low"], shaky["probe_acc_ci_high"], shaky["probe_acc_rank"]) == ("", "", "")
    assert good["probe_acc_rank"] == "1" and good["capacity_outlier"] == shaky["capacity_outlier"] == "False"
    pair = _pairs(tmp_path / "r/pairwise.csv")[("probe_acc", "good-gan", "shaky-gan")]
    assert pair["p"] == pair["p_holm"] == pair["better"] == "" and pair["significant"] == "False"
    assert pair["note"].startswith("not testable") and abs(float(pair["diff"]) + 0.3) < 1e-12
    md = (tmp_path / "r/table.md").read_text()
    assert "recon_mse ↓" in md and "probe_acc ↑" in md and "fd_digits ↓" in md
    # lower, lower, higher is better; one seed shows the mean alone
    # the t-intervals' lower ends (-0.04841, -4.841) are below what an MSE or a distance can be: clipped at 0
    assert "**0.2 [0, 0.4484]**" in md and "**20 [0, 44.84]**" in md and "**0.9** |" in md
    assert "| shaky-gan | 3 | 1 | 1 | 1 |" in md and "95 % t-interval over seeds, n = 1 to 3" in md
    assert "- statistics: mean and 95 % t-interval over seeds" in md and "†" not in md
    assert r"\textbf{0.2 [0, 0.4484]}" in (tmp_path / "r/table.tex").read_text()


@pytest.mark.slow
def test_flops_columns_are_blank_when_runs_lack_them_and_averaged_when_present(tmp_path, cli):
    write_fixture(tmp_path / "old")
    assert cli("report", tmp_path / "old")[0] == 0
    t = _table(tmp_path / "old/table.csv")
    assert t["good-gan"]["flops_per_step"] == t["good-gan"]["train_flops"] == ""
    assert "flops_per_step" in next(csv.DictReader(open(tmp_path / "old/summary.csv")))
    write_fixture(tmp_path / "new", extra={m: {"flops_per_step": 2.5e9, "train_flops": 5e10} for m in RUNS})
    assert cli("report", tmp_path / "new")[0] == 0
    t = _table(tmp_path / "new/table.csv")
    assert float(t["shaky-gan"]["train_flops"]) == 5e10  # over all runs, as the other budget columns
    assert "| 2.5e+09 | 5e+10 |" in (tmp_path / "new/table.md").read_text()


# recon_mse per seed: "best" and "close" overlap, "worst" is far from both (lower is better)
SEPARABLE = {"best": [0.10, 0.11, 0.12], "close": [0.09, 0.12, 0.13], "worst": [0.50, 0.51, 0.52]}


@pytest.mark.slow
def test_a_clearly_better_model_wins_and_overlapping_models_share_a_rank(tmp_path, cli):
    runs = {m: [("ok", v, 0.5, 10.0 + i) for i, v in enumerate(vals)] for m, vals in SEPARABLE.items()}
    write_fixture(tmp_path / "r", runs)
    code, _, err = cli("report", tmp_path / "r")
    assert code == 0, err
    pairs = _pairs(tmp_path / "r/pairwise.csv")
    for a, b in (("best", "worst"), ("close", "worst")):
        r = pairs[("recon_mse", a, b)]
        assert r["significant"] == "True" and r["better"] == a and float(r["p_holm"]) < 1e-3
        assert float(r["p"]) <= float(r["p_holm"]) <= 3 * float(r["p"]) + 1e-15  # Holm over the metric's 3 pairs
    tie = pairs[("recon_mse", "best", "close")]
    assert tie["significant"] == "False" and tie["better"] == "" and float(tie["p_holm"]) > 0.05
    t = _table(tmp_path / "r/table.csv")
    assert [t[m]["recon_mse_rank"] for m in ("best", "close", "worst")] == ["1", "1", "3"]
    # best and worst differ by exactly 0.4 on every seed: decided without a test
    best_worst = pairs[("recon_mse", "best", "worst")]
    assert best_worst["test"] == "constant" and float(best_worst["p"]) == 0
    # close and worst differ by 0.41, 0.39, 0.39: the paired t-test on the three differences
    cw = pairs[("recon_mse", "close", "worst")]
    assert cw["test"] == "paired t" and cw["n_pairs"] == "3" and float(cw["diff"]) == pytest.approx(-0.39667, abs=1e-5)
    assert float(cw["diff_low"]) < float(cw["diff"]) < float(cw["diff_high"]) < 0 and cw["p_a_better"] == "1.0"
    # probe_acc is 0.5 on every seed of every model: the same on every seed, never significant, all share rank 1
    assert all(pairs[("probe_acc", a, b)]["test"] == "constant" and float(pairs[("probe_acc", a, b)]["p"]) == 1
               for a, b in (("best", "close"), ("best", "worst"), ("close", "worst")))
    assert {t[m]["probe_acc_rank"] for m in SEPARABLE} == {"1"}
    report = (tmp_path / "r/report.md").read_text()
    assert "## Ranks and pairwise comparisons" in report and "paired t-test on the per-seed differences" in report
    assert "| worst | 3 | 1 | 1 |" in report  # ranks table: recon_mse, probe_acc, fd_digits (10, 11, 12 for all)
    assert "| recon_mse | best | worst |" in (tmp_path / "r/pairwise.md").read_text()


@pytest.mark.slow
def test_a_model_with_ten_times_the_parameters_is_marked(tmp_path, cli):
    runs = {m: RUNS["good-gan"] for m in ("a-gan", "b-gan", "c-gan", "huge-gan", "reference")}
    # "reference" has no E and no G: left out of the medians, never marked
    extra = {"huge-gan": {"params_e": 110, "params_g": 100}, "reference": {"params_e": 0, "params_g": 0}}
    write_fixture(tmp_path / "r", runs, extra)
    code, _, err = cli("report", tmp_path / "r")
    assert code == 0, err
    t = _table(tmp_path / "r/table.csv")
    assert {m: r["capacity_outlier"] for m, r in t.items()} == {
        "a-gan": "False", "b-gan": "False", "c-gan": "False", "huge-gan": "True", "reference": "False"}
    md = (tmp_path / "r/table.md").read_text()
    assert "| huge-gan † |" in md and "| a-gan |" in md
    assert "an E, G or D parameter count more than 2× from the median of the other rows" in md
    assert "huge-gan †: E 110; G 100" in md
    assert "huge-gan $^\\dagger$" in (tmp_path / "r/table.tex").read_text()


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


@pytest.mark.slow
def test_several_folders_merge_and_only_our_stale_figures_go(tmp_path, cli):
    write_fixture(tmp_path / "a", {"good-gan": RUNS["good-gan"]}, extra={"good-gan": {"kl_modes": 0.5}})
    write_fixture(tmp_path / "b", {"shaky-gan": RUNS["shaky-gan"]})
    code, _, err = cli("report", tmp_path / "a", tmp_path / "b", "--out", tmp_path / "m")
    assert code == 0, err
    assert set(_table(tmp_path / "m/table.csv")) == {"good-gan", "shaky-gan"}
    assert (tmp_path / "m/plots/samples.png").exists()
    assert cli("report", tmp_path / "a")[0] == 0
    assert (tmp_path / "a/plots/bar_kl_modes.png").exists()
    (tmp_path / "a/plots/mine.png").write_bytes(b"a figure of the user's own")
    for path in (tmp_path / "a").glob("good-gan/seed*/metrics.json"):  # the metric goes away
        path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "kl_modes"}))
    assert cli("report", tmp_path / "a")[0] == 0
    assert not (tmp_path / "a/plots/bar_kl_modes.png").exists()  # ours, and no longer supported
    assert (tmp_path / "a/plots/mine.png").read_bytes() == b"a figure of the user's own"


def test_no_figures_writes_the_tables_and_drops_figures_that_no_longer_match(tmp_path, cli):
    write_fixture(tmp_path / "a", {"good-gan": RUNS["good-gan"]})
    assert cli("report", tmp_path / "a")[0] == 0
    assert (tmp_path / "a/plots/samples.png").exists()
    code, out, err = cli("report", tmp_path / "a", "--no-figures")
    assert code == 0, err
    assert "good-gan" in out and set(_table(tmp_path / "a/table.csv")) == {"good-gan"}
    assert not list((tmp_path / "a/plots").glob("*.png"))  # old figures would belie the new tables
    report = (tmp_path / "a/report.md").read_text()
    assert "Not drawn (`--no-figures`)" in report and "](plots/" not in report


def test_the_end_of_run_report_is_rewritten_only_when_what_it_reads_changed(tmp_path):
    from benchmarks.reporting.report import locked_report

    root = write_fixture(tmp_path / "a", {"good-gan": RUNS["good-gan"]})
    first = locked_report(root, figures=False, reuse=True)
    written = (root / "table.csv").stat().st_mtime_ns
    again = locked_report(root, figures=False, reuse=True)  # a resume that found every run finished
    assert (root / "table.csv").stat().st_mtime_ns == written and first in again and "unchanged" in again
    locked_report(root, figures=False)  # `report` itself always writes
    assert (root / "table.csv").stat().st_mtime_ns > written

    row = json.loads((root / "good-gan/seed0/metrics.json").read_text())
    (root / "good-gan/seed0/metrics.json").write_text(json.dumps({**row, "fd_digits": 99.0}))  # a run redone
    assert "unchanged" not in locked_report(root, figures=False, reuse=True)
    assert float(_table(root / "table.csv")["good-gan"]["fd_digits_mean"]) == 43.0
    assert "unchanged" not in locked_report(root, figures=True, reuse=True)  # another figures flag
    assert (root / "plots/samples.png").exists()
    (root / "summary.md").unlink()  # a report file gone: written again
    assert "unchanged" not in locked_report(root, figures=True, reuse=True) and (root / "summary.md").exists()


# --- report reads folders defensively (a folder it may write into, folders it may merge) ---------

@pytest.mark.slow
def test_report_never_writes_into_a_folder_of_someone_elses(tmp_path, cli):
    write_fixture(tmp_path / "r")
    mine = tmp_path / "mine"
    (mine / "plots").mkdir(parents=True)
    (mine / "plots/fig1.png").write_bytes(b"my figure")
    (mine / "report.md").write_text("my notes")
    code, _, err = cli("report", tmp_path / "r", "--out", mine)
    assert code == 2 and "--out" in err and "not empty" in err and "Traceback" not in err
    assert (mine / "plots/fig1.png").read_bytes() == b"my figure" and (mine / "report.md").read_text() == "my notes"
    assert cli("report", tmp_path / "r", "--out", tmp_path / "new")[0] == 0  # a new folder is fine, and again:
    assert cli("report", tmp_path / "r", "--out", tmp_path / "new")[0] == 0  # it holds report's own manifest


def test_report_of_nothing_leaves_no_folder_behind(tmp_path, cli):
    (tmp_path / "empty").mkdir()
    code, _, err = cli("report", tmp_path / "empty", "--out", tmp_path / "new")
    assert code == 2 and "no runs" in err and not (tmp_path / "new").exists()


def test_folders_of_different_configs_are_not_merged(tmp_path, cli):
    write_fixture(tmp_path / "digits", {"good-gan": RUNS["good-gan"]})
    write_fixture(tmp_path / "toy", {"shaky-gan": RUNS["shaky-gan"]})
    other = json.loads((tmp_path / "toy/benchmark.json").read_text())
    other["config"].update(benchmark="toy2d", dataset="toy2d")
    (tmp_path / "toy/benchmark.json").write_text(json.dumps(other))
    before = (tmp_path / "digits/benchmark.json").read_bytes()
    code, _, err = cli("report", tmp_path / "digits", tmp_path / "toy", "--out", tmp_path / "m")
    assert code == 2 and str(tmp_path / "digits") in err and str(tmp_path / "toy") in err and "dataset" in err
    assert not (tmp_path / "m").exists() and (tmp_path / "digits/benchmark.json").read_bytes() == before


@pytest.mark.slow
def test_each_run_counts_once_however_many_paths_reach_it(tmp_path, cli):
    import shutil

    write_fixture(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "a-copy")
    for extra in ([tmp_path / "a" / ".." / "a"], [tmp_path / "a-copy"]):
        code, _, err = cli("report", tmp_path / "a", *extra)
        assert code == 0, err
        t = _table(tmp_path / "a/table.csv")
        assert (t["good-gan"]["runs"], t["good-gan"]["recon_mse_n"], t["shaky-gan"]["runs"]) == ("3", "3", "3")
    path = tmp_path / "a-copy/good-gan/seed0/metrics.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "recon_mse": 0.9}))
    code, _, err = cli("report", tmp_path / "a", tmp_path / "a-copy", "--out", tmp_path / "m")
    assert code == 2 and "good-gan seed 0" in err and "different" in err


def test_run_records_of_the_wrong_shape_are_listed_not_dropped(tmp_path, cli):
    write_fixture(tmp_path / "r", {"good-gan": RUNS["good-gan"] + [("ok", 0.2, 0.5, 20.0)] * 3})
    for seed, text in ((3, "[1, 2]"), (4, "null"), (5, "{}")):
        (tmp_path / f"r/good-gan/seed{seed}/metrics.json").write_text(text)
    code, _, err = cli("report", tmp_path / "r")
    assert code == 0, err
    t = _table(tmp_path / "r/table.csv")
    assert (t["good-gan"]["runs"], t["good-gan"]["ok"], t["good-gan"]["failed"]) == ("6", "3", "3")
    md = (tmp_path / "r/table.md").read_text()
    assert "unreadable run records, counted as failed" in md
    assert "seed3/metrics.json: holds list" in md and "seed4/metrics.json: holds NoneType" in md
    assert "seed5/metrics.json: holds no status" in md


def test_every_model_of_an_eleven_row_benchmark_gets_its_own_colour(tmp_path, monkeypatch):
    """tab10 has ten colours: the eleventh model (random-init, after ALI in sorted order) must not
    repeat the first one's in the fidelity-diversity plane."""
    import pandas as pd
    from matplotlib.colors import to_hex

    from benchmarks.reporting import plots

    models = [f"model-{i:02d}" for i in range(12)]
    df = pd.DataFrame([{"model": m, "seed": s, "status": "ok", "folder": str(tmp_path),
                        "precision_digits": 0.1 * i, "recall_digits": 0.05 * s}
                       for i, m in enumerate(models) for s in range(2)])
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig))
    assert [name for name, _ in plots.fidelity_diversity(df, tmp_path)] == ["fidelity_digits.png"]
    points = [c for c in figures[0].axes[0].collections if c.get_label() in models]
    colours = {c.get_label(): to_hex(c.get_facecolor()[0]) for c in points}
    assert sorted(colours) == models and len(set(colours.values())) == len(models)


@pytest.mark.slow
def test_compile_seconds_apart_in_records_of_every_age(tmp_path, cli):
    """train_seconds are the steps alone: a record written before compilation was counted apart
    (its train_seconds included compile_seconds) reports the difference, a new one its own value,
    and a record without compile_seconds leaves that cell blank."""
    write_fixture(tmp_path / "r", extra={
        "good-gan": {"train_seconds": 40.0, "compile_seconds": 30.0},  # old: compilation inside
        "shaky-gan": {"train_seconds": 10.0, "compile_seconds": 30.0, "train_seconds_exclude_compile": True}})
    code, _, err = cli("report", tmp_path / "r")
    assert code == 0, err
    t = _table(tmp_path / "r/table.csv")
    assert float(t["good-gan"]["train_seconds"]) == float(t["shaky-gan"]["train_seconds"]) == 10.0
    assert float(t["good-gan"]["compile_seconds"]) == 30.0
    (tmp_path / "s").mkdir()
    write_fixture(tmp_path / "s" / "r")  # no compile_seconds anywhere: still reports
    code, _, err = cli("report", tmp_path / "s" / "r")
    assert code == 0, err
    t = _table(tmp_path / "s/r/table.csv")
    assert float(t["good-gan"]["train_seconds"]) == 1.5 and t["good-gan"]["compile_seconds"] == ""
    head = next(ln for ln in open(tmp_path / "s/r/report.md") if ln.startswith("| model"))
    assert "train_seconds | compile_seconds" in head
