"""`sweep`: trials drawn reproducibly, scored on a validation split that never touches the test
split, the chosen settings and arms rerun on test, resumable, and a claims report."""
import dataclasses
import json
import math
import subprocess
import sys

import pandas as pd
import pytest
import torch

from benchmarks.core.errors import ConfigError
from benchmarks.data import load_dataset, splits
from benchmarks.data.registry import Dataset, Split
from benchmarks.study import study as studies
from tests.helpers import ROOT


STUDY = """\
benchmark: toy2d
budget: smoke
trials: 3
validation_share: 0.2
selection_seeds: [0, 5]
confirm_top: 1
final_seeds: [1, 2]
claim_seeds: [3]
models: [bigan, bigan-qp-simple]
references: [random-init]
controls: representation
targets:
  reconstruction: {metric: recon_mse, goal: min}
  representation: {metric: probe_acc, goal: max}
select_set: {train.steps: 4, train.checkpoint_every: 2, eval.truncation: [], eval.probe_labels: [],
             eval.gen_samples: 200, eval.grid_size: 200, eval.probe_max_train: 200, dataset_options.n_train: 600,
             arch.width: 8, dataset_options.n_test: 200}
final_set: {train.steps: 4, train.checkpoint_every: 2, eval.truncation: [0.5, 1.0, 2.0], eval.probe_labels: [10],
            eval.gen_samples: 200, eval.grid_size: 200, eval.probe_max_train: 200, dataset_options.n_train: 600,
            arch.width: 8, dataset_options.n_test: 200}
collapse: {metric: high_quality, below: 0.0}
arms:
  qp-norecon: {model: bigan-qp-simple, options: {z_cycle_weight: 0.0, x_cycle_weight: 0.0}}
  qp-tuned-norecon: {model: bigan-qp-simple@reconstruction, options: {z_cycle_weight: 0.0}}
claims:
  - {id: recon-terms, kind: paired, a: bigan-qp-simple, b: qp-norecon, metric: recon_mse, source: the post,
     text: the reconstruction terms reconstruct}
  - {id: features, kind: paired, a: bigan@representation, b: random-init, metric: probe_acc, source: BiGAN,
     text: features beyond an untrained encoder}
  - {id: tuning, kind: sweep, models_a: [bigan-qp-simple], models_b: [bigan], metric: recon_mse, source: GAN-QP,
     text: fewer failed trials}
  - {id: truncation, kind: interior-minimum, metric: kl_modes, source: BigGAN, text: a shape,
     rows: [bigan@reconstruction, bigan-qp-simple@reconstruction]}
"""
TIMING = ("train_seconds", "compile_seconds", "wall_seconds", "seconds")


@pytest.fixture
def study_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(STUDY)
    return path


def _metrics(folder):
    """{(row, seed): metrics without timing} of every run under a phase folder."""
    out = {}
    for p in sorted(folder.glob("*/seed*/metrics.json")):
        row = json.loads(p.read_text())
        out[(p.parent.parent.name, p.parent.name)] = {k: v for k, v in row.items()
                                                      if not any(t in k for t in TIMING)}
    return out


@pytest.mark.slow
def test_same_command_draws_the_same_settings(study_file):
    """Trial k of model m comes from a generator seeded by (m, k): two loads, and a fresh process,
    give the same trials; trial 0 is the defaults."""
    arms = studies.trial_arms(studies.load_study(study_file))
    assert arms == studies.trial_arms(studies.load_study(study_file))
    assert arms["bigan.t00"]["options"] == {} and arms["bigan.t01"]["options"] != arms["bigan.t02"]["options"]
    code = ("import json, sys; from benchmarks.study import study as s; "
            "print(json.dumps(s.trial_arms(s.load_study(sys.argv[1])), sort_keys=True))")
    fresh = subprocess.run([sys.executable, "-c", code, str(study_file)], capture_output=True, text=True, cwd=ROOT,
                           check=True)
    assert json.loads(fresh.stdout) == json.loads(json.dumps(arms, sort_keys=True))


@pytest.mark.slow
def test_sweep_runs_both_phases_and_resumes_to_the_same_results(cli, study_file, tmp_path):
    out = tmp_path / "study"
    code, _, err = cli("sweep", study_file, "--out", out, "--no-figures")
    assert code == 0, err
    select = _metrics(out / "select")
    assert {r for r, s in select if s == "seed0"} == {"bigan.t00", "bigan.t01", "bigan.t02", "bigan-qp-simple.t00",
                                                      "bigan-qp-simple.t01", "bigan-qp-simple.t02"}
    chosen = json.loads((out / "selection.json").read_text())
    final = _metrics(out / "final")
    rows = {r for r, _ in final}
    # each model's chosen rows, the arm, the reference, and the defaults a claim compares
    assert {"qp-norecon", "random-init", "bigan-qp-simple"} <= rows
    assert {pick["row"] for picks in chosen.values() for pick in picks.values()} <= rows
    # final seeds are disjoint from the selection seeds; the rows a claim compares get the claim seed
    # too, and so does every chosen row (the per-target ranking compares them paired by seed)
    assert {seed for _, seed in final} == {"seed1", "seed2", "seed3"}
    claimed = {"qp-norecon", "bigan-qp-simple", "random-init",
               *(pick["row"] for picks in chosen.values() for pick in picks.values())}
    assert {r for r, s in final if s == "seed3"} == claimed
    # every swept model has an untrained control of its own architecture: 0 steps, scored all the same
    for m in ("bigan", "bigan-qp-simple"):
        control = json.loads((out / "final" / f"{m}-untrained" / "seed1" / "metrics.json").read_text())
        assert control["status"] == "ok" and control["g_steps"] == 0 and "probe_acc" in control
    # the screen ran every trial on seed 0; the best per target also on seed 5, and the choice is among those
    assert {s for r, s in select if s == "seed5"} and all((p["arm"], "seed5") in select
                                                          for ps in chosen.values() for p in ps.values())
    # an arm derived from model@target runs the setting chosen for that target plus its own changes
    tuned = json.loads((out / "final" / "qp-tuned-norecon" / "seed1" / "config.json").read_text())["config"]
    pick = chosen["bigan-qp-simple"]["reconstruction"]
    assert tuned["base_model"] == "bigan-qp-simple" and tuned["model_args"]["z_cycle_weight"] == 0.0
    assert all(tuned["model_args"][k] == v for k, v in pick["options"].items() if k != "z_cycle_weight")
    assert pick["options"], "the tiny study must choose a drawn setting for the comparison to mean anything"
    # a trial records the model it runs and the options it drew
    config = json.loads((out / "select" / "bigan.t01" / "seed0" / "config.json").read_text())["config"]
    assert config["base_model"] == "bigan" and config["eval"]["split"] == "validation"
    drawn = studies.trial_arms(studies.load_study(study_file))["bigan.t01"]["options"]
    assert all(config["model_args"][k] == v for k, v in drawn.items())
    study_md = (out / "study.md").read_text()
    assert "## Claims" in study_md and "recon-terms" in study_md and "## Chosen settings" in study_md
    table = pd.read_csv(out / "claims.csv")
    tuning = table[table["claim"] == "tuning"]
    assert tuning["metric"].str.contains("diverge or crash").any()  # the failure comparison of the trials
    assert (table.loc[table["claim"] == "recon-terms", "test"] == "signed-rank").all()
    assert set(table["family"]) == {"recon-terms", "features", "tuning", "truncation"}  # each claim its own

    # An interrupted sweep: a trial and a final run that never wrote their scores. The same
    # command finishes them (from their checkpoints) and everything else is left as it was.
    (out / "select" / "bigan.t02" / "seed0" / "metrics.json").unlink()
    (out / "final" / "qp-norecon" / "seed1" / "metrics.json").unlink()
    (out / "final" / "bigan-untrained" / "seed2" / "metrics.json").unlink()
    (out / "selection.json").unlink()
    code, _, err = cli("sweep", study_file, "--out", out, "--no-figures")
    assert code == 0, err
    assert _metrics(out / "select") == select
    assert _metrics(out / "final") == final
    assert json.loads((out / "selection.json").read_text()) == chosen


class _Untouchable:
    """A split whose every read fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"the test split was read ({name})")

    def __len__(self):
        raise AssertionError("the test split was read (len)")


@pytest.mark.slow
def test_selection_never_reads_the_test_split(cli, study_file, tmp_path, monkeypatch):
    import benchmarks.data as data_module

    def guarded(*args, **kwargs):
        return dataclasses.replace(load_dataset(*args, **kwargs), test=_Untouchable())

    monkeypatch.setattr(data_module, "load_dataset", guarded)
    out = tmp_path / "study"
    code, _, err = cli("sweep", study_file, "--out", out, "--phase", "select", "--no-figures")
    assert code == 0, err
    runs = [json.loads(p.read_text()) for p in (out / "select").glob("*/seed*/metrics.json")]
    assert len(runs) == 6 and all(r["status"] == "ok" for r in runs)
    code, _, err = cli("sweep", study_file, "--out", out, "--phase", "confirm", "--no-figures")
    assert code == 0, err  # the confirmation too is scored on validation
    # The guard bites: the final phase scores on test.
    with pytest.raises(AssertionError, match="the test split was read"):
        cli("sweep", study_file, "--out", out, "--phase", "final", "--no-figures")


def test_validation_is_carved_from_train_stratified_and_fixed():
    data = load_dataset("digits")
    a, b = splits.carve_validation(data, 0.2), splits.carve_validation(data, 0.2)
    assert torch.equal(a.valid.x, b.valid.x) and torch.equal(a.train.x, b.train.x)
    assert len(a.train) + len(a.valid) == len(data.train) and len(a.valid) == round(0.2 * len(data.train))
    assert torch.equal(a.test.x, data.test.x)  # the test split is untouched
    share = torch.bincount(a.valid.y, minlength=10) / len(a.valid)
    assert torch.allclose(share, torch.bincount(data.train.y, minlength=10) / len(data.train), atol=0.01)
    seen = {tuple(x.flatten().tolist()) for x in a.train.x}
    assert sum(tuple(x.flatten().tolist()) in seen for x in a.valid.x) < len(a.valid) // 10  # disjoint up to duplicates
    scored = splits.scored_on(a, "validation")
    assert scored.test is a.valid and scored.valid is None and scored.meta["scored_on"] == "validation"


def test_an_official_validation_split_is_kept():
    split = Split(torch.zeros(10, 1, 4, 4, dtype=torch.uint8), torch.zeros(10, dtype=torch.int64))
    official = Split(torch.ones(4, 1, 4, 4, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64))
    data = Dataset("x", "image", (1, 4, 4), split, split, valid=official)
    assert splits.carve_validation(data, 0.2).valid is official
    with pytest.raises(ConfigError, match="no validation split"):
        splits.scored_on(dataclasses.replace(data, valid=None), "validation")


@pytest.mark.parametrize("text, message", [
    ("benchmark: toy2d\nmodels: [bigan]\ntargets: {g: {metric: recon_mse, goal: min}}\nfinal_seeds: [1]\nfoo: 1\n",
     "unknown key 'foo'"),
    ("benchmark: toy2d\nmodels: [bigan]\ntargets: {g: {metric: recon_mse, goal: lowest}}\nfinal_seeds: [1]\n",
     "goal: min|max"),
    ("benchmark: toy2d\nmodels: [bigan]\ntargets: {g: {metric: recon_mse, goal: min}}\nfinal_seeds: [1]\n"
     "claims: [{id: c, kind: paired, a: bigan, b: nobody, metric: recon_mse}]\n", "'nobody'"),
    ("benchmark: toy2d\nmodels: [bigan]\ntargets: {g: {metric: recon_mse, goal: min}}\nfinal_seeds: [1]\n"
     "arms: {bigan: {model: bigan, options: {lr: 0.1}}}\n", "name of a registered model"),
])
def test_a_bad_study_is_a_clear_error(cli, tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, _, err = cli("sweep", path, "--out", tmp_path / "o")
    assert code == 2 and message in err and "Traceback" not in err


def test_a_bad_validation_share_is_a_clear_error(cli, tmp_path):
    code, _, err = cli("run", "toy2d", "--budget", "smoke", "--set", "train.validation_share=1.5", "--out", tmp_path)
    assert code == 2 and "train.validation_share" in err


def test_expected_best_of_k_is_dodge_et_als_estimator():
    """k = 1 is the mean of the trials; the estimate equals the exact expectation of the best of k
    draws with replacement (enumerated); it only improves with k and tends to the best trial."""
    import itertools

    import numpy as np

    from benchmarks.reporting.trials import best_of_k, expected_best

    v = np.array([3.0, 1.0, 4.0, 1.5, 9.0])
    assert expected_best(v, [1], "max")[0] == pytest.approx(v.mean())
    for k in (2, 3):
        exact = np.mean([max(c) for c in itertools.product(v, repeat=k)])
        assert expected_best(v, [k], "max")[0] == pytest.approx(exact)
        exact_min = np.mean([min(c) for c in itertools.product(v, repeat=k)])
        assert expected_best(v, [k], "min")[0] == pytest.approx(exact_min)
    curve = expected_best(v, range(1, 60), "min")
    assert np.all(np.diff(curve) <= 1e-12) and curve[-1] == pytest.approx(v.min(), abs=1e-3)
    mean, low, high = best_of_k(v, [1, 5], "max")
    assert np.all(low <= mean + 1e-12) and np.all(mean <= high + 1e-12) and np.all(high <= v.max())


def test_a_claim_is_supported_only_when_significant_in_its_direction():
    """The verdict: Holm-corrected p < 0.05 and the effect in the claimed direction."""
    import pandas as pd

    from benchmarks.reporting.claims import CONTRADICTED, SUPPORTED, UNRESOLVED, claims_table
    from benchmarks.study.study import Claim, Study, Target

    seeds = range(10)
    final = pd.DataFrame(
        [{"model": "a", "seed": s, "status": "ok", "probe_acc": 0.9 + 0.001 * s} for s in seeds]
        + [{"model": "b", "seed": s, "status": "ok", "probe_acc": 0.8 + 0.002 * s} for s in seeds]
        + [{"model": "c", "seed": s, "status": "ok", "probe_acc": 0.9 + 0.001 * s + (0.01 if s % 2 else -0.01)}
           for s in seeds])
    claims = (Claim("up", "", "", "paired", "probe_acc", a="a", b="b"),
              Claim("down", "", "", "paired", "probe_acc", a="b", b="a"),
              Claim("level", "", "", "paired", "probe_acc", a="a", b="c"))
    study = Study(name="t", benchmark="digits", budget="smoke", models=("a",), trials=1, validation_share=0.2,
                  selection_seeds=(0,), final_seeds=tuple(seeds), targets=(Target("r", "probe_acc", "max"),),
                  arms={}, references=(), select_set=(), final_set=(), collapse={}, claims=claims)
    table = claims_table(study, {}, final.iloc[:0], final, {})
    assert list(table["verdict"]) == [SUPPORTED, CONTRADICTED, UNRESOLVED]
    assert table.loc[0, "test"] == "signed-rank" and table.loc[0, "effect"] == pytest.approx(0.1 - 0.0045)


def test_phase_wall_clock_comes_from_the_run_records_not_file_times(tmp_path):
    """A study folder copied or checked out anew keeps its phase's elapsed time: each run ends at
    its recorded start plus its wall time, whatever the files' modification times say."""
    import os

    import pandas as pd

    from benchmarks.reporting.study import _phase_line
    for name, start, wall in (("a", "2026-01-01 10:00:00", 600.0), ("b", "2026-01-01 10:05:00", 900.0)):
        run = tmp_path / "final" / name / "seed0"
        run.mkdir(parents=True)
        (run / "config.json").write_text(json.dumps({"started": f"{start} UTC"}))
        (run / "metrics.json").write_text(json.dumps({"wall_seconds": wall}))
        os.utime(run / "metrics.json", (4e9, 4e9))  # a checkout's time, decades later
    rows = pd.DataFrame({"status": ["ok", "ok"], "wall_seconds": [600.0, 900.0]})
    assert _phase_line("final", rows, tmp_path) == (
        "final: 2 runs (2 ok), 25.0 min of run time summed over processes, 20.0 min elapsed")


def test_final_phase_intervals_stay_inside_the_metrics_range():
    """Ten seeds of a setting that collapsed on some of them: the t-interval of FD would reach
    below 0; the study report clips it there, as the benchmark tables do."""
    import pandas as pd

    from benchmarks.reporting.study import _final_markdown
    study = studies.load_study("digits")
    fd = [20.0] * 8 + [2000.0, 2000.0]
    coverage = [0.2] * 8 + [0.01, 0.01]  # the two blown-up seeds cover little: collapsed, and flagged
    final = pd.DataFrame({"model": "m.t01", "seed": range(10), "status": "ok", "fd_digits": fd,
                          "coverage_digits": coverage})
    chosen = {study.models[0]: {"generation": {"row": "m.t01", "trial": 1, "options": {}}}}
    line = next(li for li in _final_markdown(study, chosen, final).splitlines() if "m.t01" in li)
    assert line.endswith("| 10 | 416 [0, 1013] | 0 of 10 | 2 of 10 ⚠ fragile |"), line  # unclipped: [-181, 1013]
    assert "seeds collapsed (coverage_digits < 0.25 × the row's best seed)" in _final_markdown(study, chosen, final)


@pytest.mark.slow
def test_a_truncation_trend_is_tested_per_model_row_with_seeds_as_replicates(tmp_path):
    """interior-minimum: per model row (not per run against a coin), FD at the pivot against no
    truncation ("improves as the threshold falls") and at the lowest threshold against the pivot
    ("then worsens"), paired by seed. A row whose FD only worsens contradicts the first half."""
    import pandas as pd

    from benchmarks.reporting.claims import CONTRADICTED, SUPPORTED, claims_table
    study = studies.load_study("digits")
    claim = next(c for c in study.claims if c.kind == "interior-minimum")
    shapes = {"dip": [30.0, 20.0, 25.0, 28.0], "worse": [60.0, 50.0, 40.0, 30.0]}  # at 0.25, 1.0, 2.0, inf
    for name, fd in shapes.items():
        for seed in range(12):
            run = tmp_path / name / f"seed{seed}"
            run.mkdir(parents=True)
            noise = 0.1 * seed
            pd.DataFrame({"threshold": [0.25, 1.0, 2.0, math.inf], claim.metric: [v + noise for v in fd]}).to_csv(
                run / "truncation.csv")
    final = pd.DataFrame([{"folder": str(tmp_path), "model": n, "seed": s, "status": "ok"}
                          for n in shapes for s in range(12)])
    chosen = {"bigan": {"generation": {"row": "dip"}}, "ali": {"generation": {"row": "worse"}}}
    table = claims_table(dataclasses.replace(study, claims=(claim,)), chosen, pd.DataFrame(), final, {})
    verdicts = dict(zip(table["compared"], table["verdict"]))
    assert len(table) == 4 and set(table["family_size"]) == {4}
    assert verdicts[f"dip: {claim.metric} at 1 against none (improves as it falls)"] == SUPPORTED
    assert verdicts[f"dip: {claim.metric} at 0.25 against 1 (then worsens)"] == SUPPORTED
    assert verdicts[f"worse: {claim.metric} at 1 against none (improves as it falls)"] == CONTRADICTED


@pytest.mark.parametrize("name", sorted(p.stem for p in studies.STUDY_DIR.glob("*.yaml")))
def test_every_built_in_study_loads_and_resolves_its_phases(name):
    """The shipped study files load, their selection and final configs resolve (a made-up
    selection), and their seeds keep the phases apart."""
    study = studies.load_study(name)
    cfg = studies.select_config(study)
    rows = [{"model": n, "seed": study.selection_seeds[0], "status": "ok",
             **{t.metric: float(k) for t in study.targets}} for k, n in enumerate(cfg.models)]
    chosen = studies.select(dataclasses.replace(study, selection_seeds=study.selection_seeds[:1]), rows)
    assert all(pick is not None for picks in chosen.values() for pick in picks.values())
    final = studies.final_config(study, chosen)
    assert all(name in final.arms or name in chosen or name in study.references for name in final.models)
    assert not set(study.selection_seeds) & set(final.seeds)
    assert final.eval.split == "test" and final.eval.gen_reference == "scored" and cfg.eval.split == "validation"


def test_every_chosen_row_gets_the_claim_seeds():
    """The per-target ranking compares every two chosen rows paired by seed, Holm over all pairs:
    a chosen row no claim names (BigBiGAN's reconstruction pick) runs the claim seeds as well,
    while an arm no claim names keeps the final seeds only."""
    study = studies.load_study("digits")
    chosen = json.loads((ROOT / "results/study-digits/selection.json").read_text())
    extra = studies.final_config(study, chosen).row_seeds
    picks = {pick["row"] for m in study.models for pick in chosen[m].values()}
    assert "bigbigan.t02" in picks and extra["bigbigan.t02"] == list(study.claim_seeds)
    assert all(extra.get(row) == list(study.claim_seeds) for row in picks)
    assert "random-init" not in extra and len(study.claim_seeds) + len(study.final_seeds) >= 20
