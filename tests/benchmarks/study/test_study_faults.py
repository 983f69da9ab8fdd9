"""Fault injection against `sweep` and study files (issue 35): a study is checked whole before
anything trains, a study folder records its study and refuses a later phase or resume that would
mix two, `sweep` writes only into its own folders, and every fix a message names works for the
command that printed it. Each case asserts the exit code, no traceback, and that nothing outside
the named folder changed.

Most cases need no training. One shared study (one swept model, two trials of 2 steps, one
confirmation, one final run) is swept once per module; each test that needs it gets a copy."""
import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from benchmarks.cli import build_parser, main
from tests.helpers import ROOT, assert_user_error, link_shared_caches, write_plugin

TINY = ("{train.steps: 2, train.checkpoint_every: 1, eval.truncation: [], eval.probe_labels: [], "
        "eval.references: false, eval.gen_samples: 100, eval.grid_size: 100, eval.probe_max_train: 100, "
        "dataset_options.n_train: 300, dataset_options.n_test: 100, arch.width: 8}")
MINI = f"""\
benchmark: toy2d
budget: smoke
trials: 2
validation_share: 0.2
selection_seeds: [0, 5]
confirm_top: 1
final_seeds: [1]
models: [bigan]
targets:
  reconstruction: {{metric: recon_mse, goal: min}}
select_set: {TINY}
final_set: {TINY}
collapse: {{metric: high_quality, below: 0.0}}
"""


def commands(text):
    """The command lines a message suggests (in backticks), each parsed by the CLI's own parser."""
    found = [c for c in text.split("`")[1::2] if c.startswith("python -m benchmarks ")]
    return [build_parser().parse_args(shlex.split(c)[3:]) for c in found]


def tree(folder):
    """{relative path: bytes} of every file under `folder` (empty when it does not exist)."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def study_file(text=MINI, name="mini.yaml"):
    Path(name).write_text(text)
    return name


@pytest.fixture(scope="module")
def _swept(tmp_path_factory, _shared_caches):
    """MINI swept once: select (2 trials), confirm (1 run), final (1 run), and its report."""
    root = tmp_path_factory.mktemp("study-faults")
    link_shared_caches(root / "cache", _shared_caches)
    (root / "mini.yaml").write_text(MINI)
    argv = ["sweep", str(root / "mini.yaml"), "--out", str(root / "study"), "--no-figures"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BIGAN_BENCH_CACHE", str(root / "cache"))
        mp.setattr("sys.argv", [str(ROOT / "benchmarks" / "__main__.py"), *argv])  # the command the runs record
        assert main(argv) == 0
    return root / "study"


@pytest.fixture
def swept(_swept):
    """A copy of the swept study in this test's folder, with its study file beside it."""
    shutil.copytree(_swept, "study")
    study_file()
    return Path("study")


# --- 1. fields of the wrong type: one message, exit 2, nothing written -----------------------

@pytest.mark.parametrize("old, new, message", [
    ("validation_share: 0.2", "validation_share: abc", "validation_share must be a number in (0, 1)"),
    ("models: [bigan]", "models:", "models must name at least one"),
    ("models: [bigan]", "models: [7]", "models must be a list of names"),
    ("models: [bigan]", "models: bigan", "models must be a list of names, e.g. models: [bigan, ali]; got 'bigan'"),
    ("targets:\n  reconstruction: {metric: recon_mse, goal: min}", "targets: [recon_mse]", "targets must be a mapping"),
    ("collapse:", "arms: [x]\ncollapse:", "arms must be a mapping"),
    ("final_seeds: [1]", "final_seeds: 3", "final_seeds must be a non-empty list of seeds"),
    ("trials: 2", "trials: 2\ntrials: 3", "the key 'trials' is written twice"),
])
def test_wrong_typed_study_fields_are_refused(cli, old, new, message):
    assert old in MINI
    assert_user_error(cli("sweep", study_file(MINI.replace(old, new, 1)), "--out", "o"), message)
    assert not Path("o").exists()


def test_a_study_or_config_that_is_not_utf8_is_refused(cli):
    Path("bad.yaml").write_bytes(MINI.encode() + b"# \xff\xfe\n")
    assert_user_error(cli("sweep", "bad.yaml", "--out", "o"), "Study bad.yaml is not UTF-8 text (byte 0xff")
    assert_user_error(cli("run", "bad.yaml", "--out", "o"), "Config bad.yaml is not UTF-8 text (byte 0xff")
    assert not Path("o").exists()


# --- 2. every part of the study checked before the select phase trains -----------------------

@pytest.mark.parametrize("extra, message", [
    ("arms:\n  fast: {model: bigan, options: {adam_beta1: 1.5}}\n", "arms.fast.options.adam_beta1 must be in [0, 1)"),
    ("arms:\n  fast: {model: bigan@reconstruction, options: {lr: -1}}\n", "arms.fast.options.lr must be > 0"),
    ("arms:\n  fast: {model: bigan, options: {lrr: 1}}\n", "model 'bigan' has no option 'lrr'. Did you mean 'lr'?"),
    ("arms:\n  fast: {model: bigan, steps: 100}\n", "arms.fast.steps = 100 is more than the final phase's 2"),
    ("claims:\n  - {id: c, kind: paired, a: bigan, b: random-init, metric: recon_mes}\nreferences: [random-init]\n",
     "claim 'c': metric 'recon_mes' is not a column the final phase writes. Did you mean 'recon_mse'?"),
    ("claims:\n  - {id: c, kind: paired, a: bigan, b: 'ref:raw_probe_acc', metric: recon_mse}\n",
     "claim 'c': b 'ref:raw_probe_acc' is not a reference of recon_mse; references.json holds ref:raw_recon_mse"),
    ("claims:\n  - {id: c, kind: sweep, models_a: [bigan], models_b: [ali], metric: recon_mse}\n",
     "claim 'c' compares the trials of 'ali', which the study does not sweep"),
    ("claims:\n  - {id: t, kind: interior-minimum, metric: recon_mse}\n",
     "metric 'recon_mse' is not a score of the truncation sweep (truncation.csv)"),
    ("claims:\n  - {id: t, kind: monotone, metric: high_quality}\n", "has 0 threshold(s) (eval.truncation)"),
])
def test_the_study_is_checked_whole_before_anything_trains(cli, extra, message):
    assert_user_error(cli("sweep", study_file(MINI + extra), "--out", "o"), message)
    assert not Path("o").exists()


@pytest.mark.parametrize("old, new, message", [
    ("final_seeds: [1]", "final_seeds: [-1]", "final_seeds: seed -1 is not a whole number from 0 to 4294967295"),
    ("final_set: {", "final_set: {eval.probe_labelz: [1], ", "Unknown config key 'eval.probe_labelz'. Did you mean"),
    ("final_set: {", "final_set: {model_options.bigan: 5, ", "e.g. final_set: {model_options.bigan.lr: 1e-4}"),
    ("metric: recon_mse", "metric: recon_mes", "targets.reconstruction: metric 'recon_mes' is not a column the select "
                                               "phase writes. Did you mean 'recon_mse'?"),
    ("metric: recon_mse", "metric: fd_digits", "metric 'fd_digits' is not a column the select phase writes"),
    ("goal: min", "goal: max", "recon_mse is lower-is-better, so its goal is min"),
    ("below: 0.0", "below: low", "collapse.below must be a number"),
    ("collapse: {metric: high_quality, below: 0.0}", "collapse: {metric: high_quality}",
     "collapse must be {metric: <column>, below: <value>}"),
    (f"final_set: {TINY}\ncollapse: {{metric: high_quality, below: 0.0}}",
     f"final_set: {TINY.replace('eval.probe_labels: []', 'eval.probe_labels: [10]')}\n"
     "collapse: {metric: probe_acc_10, relative: 0.5}", "The final phase writes it, but this phase's settings"),
])
def test_a_mistake_in_a_later_phase_is_found_before_the_first(cli, old, new, message):
    assert old in MINI
    err = assert_user_error(cli("sweep", study_file(MINI.replace(old, new, 1)), "--out", "o"), message)
    assert "--set" not in err  # sweep has none: a study sets config keys in select_set and final_set
    assert not Path("o").exists()


# --- 3. rows that would be mixed up, and studies that would be ------------------------------

@pytest.mark.parametrize("arms, message", [
    ("  bigan.t01: {model: bigan, options: {lr: 0.001}}\n", "has the form of a selection trial"),
    ("  x1: {model: bigan, options: {lr: 0.001}}\n  x1: {model: bigan, options: {lr: 0.002}}\n",
     "the key 'x1' is written twice in one mapping (lines"),
    ("  X1: {model: bigan, options: {lr: 0.001}}\n  x1: {model: bigan, options: {lr: 0.002}}\n",
     "arms 'X1' and 'x1' differ only in letter case"),
    ("  BiGAN: {model: bigan, options: {lr: 0.001}}\n", "has the name of a registered model ('bigan'"),
    ("  wide: {model: bigan, options: {width: 64}}\n", "arms.wide.options may not set width"),
    ("  small: {model: bigan@reconstruction, options: {z_dim: 1}}\n", "arms.small.options may not set z_dim"),
])
def test_arms_that_would_share_or_misstate_a_row_are_refused(cli, arms, message):
    assert_user_error(cli("sweep", study_file(MINI + "arms:\n" + arms), "--out", "o"), message)
    assert not Path("o").exists()


def test_a_run_config_refuses_the_same_arms(cli):
    from benchmarks.config import load_config
    from benchmarks.core.errors import ConfigError

    assert_user_error(cli("run", "toy2d", "--budget", "smoke", "--set",
                          "arms={fast: {model: bigan, options: {lr: -1}}}", "--set", "models=[fast]", "--out", "o"),
                      "arms.fast.options.lr must be > 0")
    assert not Path("o").exists()

    for arms, message in (("{Bigan-x: {model: bigan}, bigan-X: {model: bigan}}", "differs from"),
                          ("{x: {model: bigan, options: {z_dim: 4}}}", "may not set z_dim")):
        with pytest.raises(ConfigError, match=message):
            load_config("toy2d", "smoke", overrides=[f"arms={arms}"])
    with pytest.raises(ConfigError, match="model_options.bigan may not set width"):
        load_config("toy2d", "smoke", overrides=["model_options.bigan.width=4"])


@pytest.mark.slow
def test_a_study_edited_between_phases_is_refused_with_the_difference(cli, swept):
    before = tree(swept)
    for old, new, diff in (("validation_share: 0.2", "validation_share: 0.3", "validation_share: 0.2 -> 0.3"),
                           ("train.steps: 2, ", "train.steps: 3, ", "select_set.train.steps: 2 -> 3")):
        err = assert_user_error(cli("sweep", study_file(MINI.replace(old, new, 1), "edited.yaml"), "--out", swept,
                                    "--phase", "final"), "holds another study's runs", diff, "Nothing was changed")
        assert all(c.command == "sweep" and c.out != swept for c in commands(err))
    assert_user_error(cli("sweep", "mini.yaml", "--out", swept, "--trials", "3"), "trials: 2 -> 3")
    assert tree(swept) == before


@pytest.mark.slow
def test_a_resume_with_another_thread_count_is_refused(cli, swept, monkeypatch):
    """Runs trained with one thread per run and with two score differently in their last digits;
    the folder records how many, and a resume that would train under another --jobs share is
    refused. One that trains nothing (it only rewrites the report) is not."""
    from benchmarks.training import shards as run

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    monkeypatch.setattr(run, "run_jobs", lambda argv, jobs, threads=None: 0)  # a shard would find nothing to do
    runs = _runs(swept)
    code, _, err = cli("sweep", "mini.yaml", "--out", swept, "--jobs", "2", "--no-figures")
    assert code == 0 and "threads per run" not in err, err
    assert _runs(swept) == runs
    next((swept / "final").glob("*/seed1/metrics.json")).unlink()  # a final run to finish
    before = tree(swept)
    err = assert_user_error(cli("sweep", "mini.yaml", "--out", swept, "--jobs", "2"),
                            f"threads per run: {torch.get_num_threads()} -> 4", "Run it with the recorded threads")
    [fix] = commands(err)
    assert fix.command == "sweep" and 8 // fix.jobs == torch.get_num_threads()  # a --jobs share of the 8 cores
    assert tree(swept) == before


@pytest.mark.slow
def test_a_sweep_keeps_its_thread_share_in_a_phase_of_fewer_runs(cli, swept, monkeypatch):
    """--jobs 4: every run of every phase trains with the 4-job share of the cores, also a phase of
    2 runs (2 shard processes with that share, not 2 with twice as many threads) and of 1 run (a
    shard process, not this one with every core)."""
    from benchmarks.training import shards as run

    threads, calls = torch.get_num_threads(), []
    monkeypatch.setattr("os.cpu_count", lambda: 4 * threads)  # the share is the threads swept with
    monkeypatch.setattr(run, "run_jobs", lambda argv, jobs, threads=None: calls.append((jobs, threads)) or 0)
    code, _, err = cli("sweep", "mini.yaml", "--out", swept, "--jobs", "4", "--no-figures")
    assert code == 0, err
    assert calls == [(2, threads), (1, threads), (1, threads)]  # select, confirm, final


@pytest.mark.slow
def test_shards_wait_for_the_whole_selection(cli, swept):
    err = assert_user_error(cli("sweep", study_file(), "--out", "fresh", "--shard", "1/2"),
                            "--phase all with --shard", "Run the phases one after another")
    assert [c.phase for c in commands(err)] == ["select", "confirm", "final"]
    assert all(c.shard == "1/2" for c in commands(err))
    assert not Path("fresh").exists()
    assert_user_error(cli("sweep", "mini.yaml", "--out", "fresh", "--phase", "final"), "Run the select phase first")
    assert not Path("fresh").exists()
    confirmed = next(p for p in (swept / "select").glob("*/seed5"))
    shutil.rmtree(confirmed)  # one shard of the confirmation has not finished
    before = tree(swept)
    err = assert_user_error(cli("sweep", "mini.yaml", "--out", swept, "--phase", "final", "--shard", "2/2"),
                            "Run the confirm phase first")
    assert [(c.phase, c.shard) for c in commands(err)] == [("confirm", "2/2")]
    assert_user_error(cli("sweep", "mini.yaml", "--out", swept, "--shard", "1/2"), "--phase all with --shard")
    assert tree(swept) == before


# --- 4. sweep and report write only into folders of their own --------------------------------

def _git_status():
    try:
        return subprocess.run(["git", "status", "--porcelain", "--", "results"], cwd=ROOT, capture_output=True,
                              text=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        pytest.skip("not a git checkout")


def test_committed_results_are_never_written(cli):
    committed = ROOT / "results" / "study-toy2d"
    if not (committed / "selection.json").is_file():
        pytest.skip("the committed study folder is not in this checkout")
    status, before = _git_status(), tree(committed)
    err = assert_user_error(cli("sweep", "toy2d", "--phase", "final", "--out", committed), "is committed to git",
                            "Nothing was changed")
    assert [c.out for c in commands(err)] == [Path("runs/study-toy2d")]
    err = assert_user_error(cli("report", ROOT / "results" / "toy2d"), "is committed to git")
    assert [c.out for c in commands(err)] == [Path("runs/toy2d-report")]
    err = assert_user_error(cli("report", committed), "is a study folder", "committed to git")
    sweep, report = commands(err)  # both fixes write outside the committed folder
    assert sweep.out == Path("runs/study-toy2d") and report.out == Path("runs/study-toy2d-final-report")
    new = ROOT / "results" / "a-new-folder"  # nor added to: a new folder among the committed ones
    assert_user_error(cli("report", ROOT / "results" / "toy2d", "--out", new), f"is inside {ROOT / 'results'}")
    assert_user_error(cli("sweep", "toy2d", "--out", new), f"is inside {ROOT / 'results'}")
    assert not new.exists() and tree(committed) == before and _git_status() == status


@pytest.mark.slow
def test_sweep_refuses_a_folder_that_is_not_its_own(cli, swept):
    run_folder, before = swept / "select", tree(swept)
    err = assert_user_error(cli("sweep", "mini.yaml", "--out", run_folder, "--no-figures"),
                            "is a results folder of `run`", "its files are left as they are")
    assert commands(err)[0].out == Path(f"{run_folder}-study")
    Path("mine").mkdir()
    (Path("mine") / "notes.txt").write_text("someone's")
    assert_user_error(cli("sweep", "mini.yaml", "--out", "mine"), "is not a study folder")
    Path("afile").write_text("x")
    assert_user_error(cli("sweep", "mini.yaml", "--out", "afile"), "is a file, not a folder")
    assert tree(swept) == before and tree("mine") == {"notes.txt": b"someone's"}


@pytest.mark.slow
def test_report_names_the_sweep_that_rewrites_a_study_folder(cli, swept):
    err = assert_user_error(cli("report", swept), "is a study folder")
    sweep, report = commands(err)
    assert sweep.command == "sweep" and sweep.out == swept and report.dirs == [swept / "final"]


# --- 5. a sweep's fixes are sweep's: --force retrains what cannot be resumed, and only that ---

def _runs(folder):
    return {k: v for k, v in tree(folder).items() if k.endswith(("metrics.json", "checkpoint.pt", "losses.csv"))}


@pytest.mark.slow
def test_sweep_force_retrains_only_the_damaged_runs(cli, swept):
    trial = swept / "select" / "bigan.t01" / "seed0"
    checkpoint = (trial / "checkpoint.pt").read_bytes()
    (trial / "checkpoint.pt").write_bytes(checkpoint[:1000])
    (trial / "metrics.json").unlink()  # unfinished: it would resume from the damaged checkpoint
    kept = {k: v for k, v in _runs(swept).items() if not k.startswith("select/bigan.t01/")}
    assert_user_error(cli("sweep", "mini.yaml", "--out", swept, "--no-figures"), "checkpoint.pt cannot be read",
                      "rerun with --force")
    code, _, err = cli("sweep", "mini.yaml", "--out", swept, "--no-figures", "--force")
    assert code == 0, err
    assert "[bigan.t01 seed 0] retrained (--force)" in err and err.count("retrained (--force)") == 1
    assert {k: v for k, v in _runs(swept).items() if not k.startswith("select/bigan.t01/")} == kept
    assert json.loads((trial / "metrics.json").read_text())["status"] == "ok"


@pytest.mark.slow
def test_an_unreadable_run_record_names_sweeps_own_fix(cli, swept):
    final = next((swept / "final").glob("*/seed1"))
    (final / "config.json").write_text('{"conf')
    kept = {k: v for k, v in _runs(swept).items() if not k.startswith(f"final/{final.parent.name}/")}
    err = assert_user_error(cli("sweep", "mini.yaml", "--out", swept, "--no-figures"), "config.json is unreadable",
                            "run the same sweep command with --force")
    assert "--models" not in err and "--seeds" not in err
    code, _, err = cli("sweep", "mini.yaml", "--out", swept, "--no-figures", "--force")
    assert code == 0 and err.count("retrained (--force)") == 1, err
    assert {k: v for k, v in _runs(swept).items() if not k.startswith(f"final/{final.parent.name}/")} == kept


def test_an_edited_plugin_under_sweep_names_sweeps_own_fix(cli, tmp_path):
    """A study of a plugin model, its file edited after the selection: refused with sweep's fix."""
    plugin = write_plugin(tmp_path / "mine.py", '@models.register("mine")\nclass Mine(BiGAN):\n    pass\n')
    text = MINI.replace("models: [bigan]", "models: [mine]").replace("confirm_top: 1", "confirm_top: 0")
    text = text.replace("trials: 2", "trials: 1").replace("selection_seeds: [0, 5]", "selection_seeds: [0]")
    study_file(text)
    code, _, err = cli("sweep", "mini.yaml", "--out", "o", "--phase", "select", "--plugin", plugin, "--no-figures")
    assert code == 0, err
    plugin.write_text(plugin.read_text() + "# edited\n")
    err = assert_user_error(cli("sweep", "mini.yaml", "--out", "o", "--phase", "select", "--plugin", plugin),
                            "plugin_source", "run the same sweep command with --force")
    assert "--models" not in err


# --- 6. a damaged selection.json -------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("damage", ["[]", '{"bigan": 5}', '{"bigan": {"reconstruction": {"row": 3}}}', "cut"])
def test_a_damaged_selection_is_computed_again(cli, swept, damage):
    path = swept / "selection.json"
    good = path.read_text()
    path.write_text(good[:len(good) // 2] if damage == "cut" else damage)
    code, _, err = cli("sweep", "mini.yaml", "--out", swept, "--phase", "select", "--no-figures")
    assert code == 0 and "Traceback" not in err and "selection.json was damaged" in err, err
    assert json.loads(path.read_text()) == json.loads(good)


@pytest.mark.slow
def test_a_damaged_selection_of_an_incomplete_study_is_refused(cli, swept):
    shutil.rmtree(next((swept / "select").glob("*/seed5")))  # the confirmation is incomplete
    (swept / "selection.json").write_text("[]")
    before = tree(swept)
    err = assert_user_error(cli("sweep", "mini.yaml", "--out", swept, "--phase", "select"), "selection.json is damaged",
                            "Delete it")
    assert [c.phase for c in commands(err)] == ["final"]
    assert tree(swept) == before


# --- 7. what a study file may cost ------------------------------------------------------------

BOMB = "".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]\n" for i in range(1, 9))


@pytest.mark.parametrize("text, message", [
    ("l0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + BOMB + MINI.replace("select_set: {", "select_set: {x: *l8, "),
     "aliases (*name) expand to more than 100,000 values"),
    ("a: &a [1, *a]\n" + MINI, "refers to a value that contains it"),
    (MINI + "# " + "x" * 300_000 + "\n", "is larger than 256 KiB"),
    ("[" * 5000 + "]" * 5000, "nests its lists or mappings too deeply"),
])
def test_a_study_file_that_would_cost_without_bound_is_refused_at_once(cli, text, message):
    t0 = time.perf_counter()
    assert_user_error(cli("sweep", study_file(text), "--out", "o"), message)
    assert time.perf_counter() - t0 < 30 and not Path("o").exists()


def test_bounds_on_trials_and_on_set_values(cli):
    t0 = time.perf_counter()
    assert_user_error(cli("sweep", study_file(), "--trials", "1000000000", "--out", "o"),
                      "--trials 1000000000 is out of range")
    assert time.perf_counter() - t0 < 30
    value = "[" + ", ".join(["&a [" + ", ".join(["1"] * 400) + "]", *(["*a"] * 400)]) + "]"
    assert_user_error(cli("run", "toy2d", "--budget", "smoke", "--set", f"eval.truncation={value}", "--out", "o"),
                      "expand to more than 100,000 values")
    assert_user_error(cli("run", "toy2d", "--budget", "smoke", "--set", "eval.probe_labels=[10000001]", "--out", "o"),
                      "each at most 1000000")
    assert not Path("o").exists()


# --- 8. plugin search spaces against the option's type ----------------------------------------

@pytest.mark.parametrize("body, message", [
    ('@models.register("c1")\nclass C1(BiGAN):\n    search_space = {"lr": Choice(["fast", "slow"])}\n',
     "search_space['lr'] = one of fast, slow draws 'fast', but lr is a number option"),
    ('@models.register("c2")\nclass C2(BiGAN):\n    search_space = {"extra": Uniform(1.0, 5.0)}\n\n'
     '    def __init__(self, *, extra=2, **kw):\n        super().__init__(**kw)\n',
     "search_space['extra'] = U[1, 5) draws fractional numbers, but extra is an integer option"),
    ('@models.register("c3")\nclass C3(BiGAN):\n    search_space = {"adam_beta1": Uniform(-1e308, 1e308)}\n',
     "needs hi - lo to be a finite float"),
])
def test_a_search_space_that_does_not_fit_its_option_is_refused_at_registration(cli, tmp_path, body, message):
    plugin = write_plugin(tmp_path / "space.py", "from models.search import Choice, Uniform\n\n" + body)
    assert_user_error(cli("list-models", "--plugin", plugin), message)


# --- 9. weights the user names must load ------------------------------------------------------

def test_named_weights_that_do_not_load_are_refused_before_training(cli, tmp_path):
    from metrics import dinov2, lpips

    empty, noise = tmp_path / "empty", tmp_path / "noise"
    for folder, content in ((empty, b""), (noise, os.urandom(4096))):
        folder.mkdir()
        for name in (lpips.LPIPS_FILE, lpips.VGG16_FILE, dinov2.weights_file()):
            (folder / name).write_bytes(content)
    base = ("run", "digits", "--budget", "smoke", "--models", "pca", "--out", "o")
    for flag, given, said in (("--lpips-weights", empty, "LPIPS weights"), ("--lpips-weights", noise, "LPIPS weights"),
                              ("--dinov2-weights", empty / dinov2.weights_file(), "DINOv2 weights"),
                              ("--dinov2-weights", noise / dinov2.weights_file(), "DINOv2 weights"),
                              ("--fid-weights", tmp_path, "is not a file"),
                              ("--fid-weights", tmp_path / "missing.pth", "is not a file")):
        assert_user_error(cli(*base, flag, given), said, f"Name the right file or folder with {flag}")
    assert_user_error(cli("sweep", study_file(), "--out", "o", "--fid-weights", noise / lpips.VGG16_FILE),
                      "Inception weights", "could not be loaded")
    assert not Path("o").exists()


def test_named_inception_weights_of_the_right_architecture_pass_the_check(random_weights, monkeypatch):
    """The check loads the file as the evaluation will; random weights of the right architecture load."""
    from benchmarks.cli import run as cli

    monkeypatch.setattr(cli, "_WEIGHTS_LOADED", set())
    args = SimpleNamespace(job_of=None, fid_weights=str(random_weights), lpips_weights=None, dinov2_weights=None)
    cli.check_weights(args)
    assert ("--fid-weights", args.fid_weights) in cli._WEIGHTS_LOADED


# --- the column knowledge the checks read (core/columns.py) ------------------------------------

def test_every_metric_column_a_committed_run_wrote_is_one_the_config_produces():
    """The columns `produced` names for a config cover every metric column the committed runs wrote,
    points and images, select and final phases, with Inception columns and without."""
    from benchmarks.config import backfilled, load_config
    from benchmarks.core import columns

    folders = sorted(p.parent for p in (ROOT / "results").glob("**/benchmark.json"))
    if not folders:
        pytest.skip("no committed results in this checkout")
    for folder in folders:
        recorded = backfilled(json.loads((folder / "benchmark.json").read_text())["config"])
        cfg = load_config(recorded["benchmark"], recorded["budget"])
        cfg = cfg.replace(eval=cfg.eval.replace(**{k: tuple(v) if isinstance(v, list) else v
                                                   for k, v in recorded["eval"].items()}))
        written = {k for p in folder.glob("*/seed*/metrics.json") for k in json.loads(p.read_text())
                   if columns.direction(k)}
        assert written and written <= set(columns.produced(cfg, recorded["dataset"] == "toy2d")), folder


def test_every_reference_a_committed_run_wrote_is_one_a_claim_can_name():
    """reference_keys, which the study check reads for `ref:` claims, names every key that the
    committed references.json files hold, each as the reference of a column the runs write."""
    from benchmarks.core import columns

    files = sorted((ROOT / "results").glob("**/references.json"))
    if not files:
        pytest.skip("no committed results in this checkout")
    for path in files:
        written = {k for p in path.parent.glob("*/seed*/metrics.json") for k in json.loads(p.read_text())
                   if columns.direction(k)}
        for key in json.loads(path.read_text())["values"]:
            assert any(key in columns.reference_keys(m) for m in written | {"probe_acc"}), (path, key)


# --- every fix a message names is a command line the CLI takes --------------------------------

@pytest.mark.slow
def test_every_command_a_sweep_message_suggests_is_a_sweep_the_parser_takes(cli, swept):
    """The refusals of a study: each suggested command parses with the CLI's own parser, is a sweep
    of the same study, and none names run's --models or --seeds."""
    Path("runlike").mkdir()
    Path("runlike/benchmark.json").write_text("{}")
    errs = [assert_user_error(cli("sweep", "mini.yaml", "--out", "fresh", "--shard", "1/2")),
            assert_user_error(cli("sweep", "mini.yaml", "--out", "fresh", "--phase", "final")),
            assert_user_error(cli("sweep", "mini.yaml", "--out", "fresh", "--phase", "confirm", "--shard", "2/3")),
            assert_user_error(cli("sweep", "mini.yaml", "--out", "runlike")),
            assert_user_error(cli("sweep", "mini.yaml", "--out", swept, "--trials", "1"))]
    for err in errs:
        parsed = commands(err)
        assert parsed and all(c.command == "sweep" and c.study == "mini.yaml" for c in parsed), err
        assert "--models" not in err and "--seeds" not in err
    assert not Path("fresh").exists()


@pytest.mark.slow
def test_a_damaged_checkpoint_of_a_swept_run_names_a_sweep_to_retrain_it(swept):
    """load_run's fix for a study's run is the sweep that made it, with --force (which retrains
    the damaged run only), without the --jobs shard's own options."""
    import benchmarks
    from benchmarks.core.errors import UserError

    trial = swept / "select" / "bigan.t00" / "seed0"
    data = (trial / "checkpoint.pt").read_bytes()
    (trial / "checkpoint.pt").write_bytes(data[:500])
    with pytest.raises(UserError) as refused:
        benchmarks.load_run(trial, device="cpu")
    [fix] = commands(str(refused.value))
    assert fix.command == "sweep" and fix.force and fix.shard is None and fix.job_of is None
