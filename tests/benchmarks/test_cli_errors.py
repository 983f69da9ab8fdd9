"""Bad input: one clear paragraph, exit code 2, no traceback, nothing finished lost."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, assert_user_error, make_celeba, make_fashion_mnist, write_plugin

# One model, tables only, no truncation sweep or tracking curve (tested in test_run_figures.py):
# these tests are about the command line and the data, and the suite stays fast.
SMOKE = ("--budget", "smoke", "--models", "bigan", "--no-figures", "--set", "eval.truncation=[]",
         "--set", "eval.track_every=0")


def test_unknown_model(cli):
    assert_user_error(cli("run", "digits", *SMOKE, "--models", "bigann", "--out", "r"), "bigann", "Did you mean bigan")
    assert not Path("r").exists()  # nothing written


def test_unknown_benchmark_and_budget(cli):
    assert_user_error(cli("run", "digitz", *SMOKE), "Unknown benchmark 'digitz'", "digits")
    assert_user_error(cli("run", "digits", "--budget", "huge"), "no budget 'huge'")


def test_unknown_compile_backend(cli):
    assert_user_error(cli("run", "digits", *SMOKE, "--compile", "--compile-backend", "inductorr", "--out", "r"),
                      "--compile-backend 'inductorr'", "aot_eager")
    assert not Path("r").exists()


def test_unknown_config_key(cli, tmp_path):
    assert_user_error(cli("run", "digits", *SMOKE, "--set", "train.stepz=3"), "train.stepz", "Did you mean 'steps'")
    assert_user_error(cli("run", "digits", *SMOKE, "--set", "train.steps=many"), "must be an integer")
    assert_user_error(cli("run", "digits", *SMOKE, "--set", "model_options.bigan.lrr=1"), "no option lrr")
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: digits\nmodels: [bigan]\narch: {z_dim: 8, width: 8, depth: 3}\n"
                   "train: {steps: 1, batch_size: 8}\nbudgets: {smoke: {}, quick: {}, full: {}}\n")
    assert_user_error(cli("run", bad, *SMOKE), "arch.depth")


def test_plugin_that_fails_to_import(cli, tmp_path):
    broken = write_plugin(tmp_path / "broken.py", "raise ImportError('needs a package you do not have')\n")
    assert_user_error(cli("list-models", "--plugin", broken), "broken.py", "failed to import", "needs a package")
    assert_user_error(cli("run", "digits", "--plugin", "no_such_plugin_module"), "no_such_plugin_module")
    assert_user_error(cli("run", "digits", "--plugin", tmp_path / "missing.py"), "does not exist")


@pytest.mark.slow
def test_output_folder_of_another_config_is_refused_and_kept(cli):
    assert cli("run", "digits", *SMOKE, "--out", "r")[0] == 0
    before = Path("r/bigan/seed0/metrics.json").read_text()
    assert_user_error(cli("run", "digits", *SMOKE, "--out", "r", "--set", "arch.width=16"),
                      "holds runs of a different config", "arch.width: 32 -> 16")
    assert_user_error(cli("run", "digits", *SMOKE, "--out", "r", "--set", "model_options.bigan.lr=0.001"),
                      "refusing to resume", "lr: 0.0002 -> 0.001")
    assert Path("r/bigan/seed0/metrics.json").read_text() == before
    assert Path("r/bigan/seed0/checkpoint.pt").exists()


@pytest.mark.parametrize("folder", ["digits-quick", "fashion-mnist-quick", "toy2d"])
def test_folders_recorded_before_a_key_existed_still_match_todays_config(folder):
    """Folders recorded before eval.probe_labels (and others in BACKFILL) existed read as having
    today's default, so a run can complete them and report can merge them with newer folders.
    tests/records/ keeps the committed folders' benchmark.json as it was before that key, and
    the committed folders of today must match too."""
    from benchmarks.config import backfilled, config_diff, load_config

    old = json.loads((ROOT / "tests/records" / f"{folder}-before-probe-labels.json").read_text())["config"]
    assert "probe_labels" not in old["eval"]
    cfg = json.loads(json.dumps(load_config(old["benchmark"], old["budget"]).folder_record()))
    assert config_diff(backfilled(old), cfg) == []
    now = json.loads((ROOT / "results" / folder / "benchmark.json").read_text())["config"]
    assert config_diff(backfilled(now), cfg) == []


def test_missing_celeba(cli):
    assert_user_error(cli("run", "celeba64", *SMOKE), "CELEBA_ROOT", "img_align_celeba")


def test_corrupt_celeba_image(cli, tmp_path, monkeypatch):
    root = tmp_path / "celeba"
    make_celeba(root, n=24)
    (root / "img_align_celeba" / "000003.jpg").write_bytes(b"not a jpeg")
    monkeypatch.setenv("CELEBA_ROOT", str(root))
    assert_user_error(cli("run", "celeba64", *SMOKE), "000003.jpg")


def test_corrupt_fashion_mnist_file(cli, tmp_path):
    root = tmp_path / "fm"
    make_fashion_mnist(root)
    f = root / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:100])
    assert_user_error(cli("run", "fashion-mnist", *SMOKE, "--data-root", root), "train-images-idx3-ubyte")


def test_bad_device(cli):
    assert_user_error(cli("run", "digits", *SMOKE, "--device", "tpu"), "--device")


def test_report_on_missing_folder(cli):
    assert_user_error(cli("report", "nowhere"), "does not exist")


@pytest.mark.slow
def test_exit_code_from_a_real_process():
    p = subprocess.run([sys.executable, "-m", "benchmarks", "run", "nonexistent-benchmark"],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2 and "Traceback" not in p.stderr and "Unknown benchmark" in p.stderr


@pytest.mark.parametrize("cfg", ["digits", "fashion-mnist", "celeba64", "toy2d"])
def test_every_config_resolves_every_budget(cfg):
    from benchmarks.config import load_config

    for budget in ("smoke", "quick", "full"):
        c = load_config(cfg, budget=budget)
        assert c.models and c.seeds and c.train.steps > 0
    assert len(load_config(cfg, budget="smoke").seeds) == 1


@pytest.mark.slow
def test_celeba_smoke_on_generated_folder(cli, tmp_path, monkeypatch):
    root = tmp_path / "celeba"
    make_celeba(root, n=40)
    monkeypatch.setenv("CELEBA_ROOT", str(root))
    code, _, err = cli("run", "celeba64", *SMOKE, "--out", "r")
    assert code == 0, err
    m = json.loads(Path("r/bigan/seed0/metrics.json").read_text())
    assert m["status"] == "ok" and 0 <= m["probe_acc"] <= 1


@pytest.mark.slow
def test_fashion_mnist_smoke_on_fixture(cli, tmp_path):
    root = tmp_path / "fm"
    make_fashion_mnist(root)
    code, _, err = cli("run", "fashion-mnist", *SMOKE, "--data-root", root, "--out", "r")
    assert code == 0, err


def test_override_reads_exponent_numbers():
    from benchmarks.config import parse_override

    assert parse_override("model_options.bigan.lr=4e-4") == (["model_options", "bigan", "lr"], 4e-4)
    assert parse_override("dataset_options.variant=ring8")[1] == "ring8"


def test_edited_plugin_is_refused_and_force_is_scoped(tmp_path, cli):
    """A plugin's source is part of its runs' identity; the refusal names the narrowest fix, and
    --force --models X retrains X alone: every other finished run stays byte-identical."""
    body = '@models.register("my-pca")\nclass MyPCA(models.get("pca")):\n    pass\n'
    plugin = write_plugin(tmp_path / "mypca.py", body)
    base = ("run", "digits", *SMOKE, "--models", "pca,my-pca", "--plugin", plugin, "--out", "r",
            "--set", "eval.references=false")
    assert cli(*base)[0] == 0
    kept = {f: Path("r/pca/seed0", f).read_bytes() for f in ("metrics.json", "checkpoint.pt", "config.json")}
    mine = Path("r/my-pca/seed0/metrics.json").read_text()
    plugin.write_text(plugin.read_text() + "# edited\n")
    assert_user_error(cli(*base), "plugin_source", "--force --models my-pca --seeds 0")
    assert Path("r/my-pca/seed0/metrics.json").read_text() == mine  # refused: nothing touched
    code, _, err = cli(*base, "--force", "--models", "my-pca")
    assert code == 0, err
    assert json.loads(Path("r/my-pca/seed0/config.json").read_text())["config"]["plugin_source"]
    assert {f: Path("r/pca/seed0", f).read_bytes() for f in kept} == kept


def test_a_failing_model_stays_local(tmp_path, cli):
    """A plugin whose __init__ raises is recorded as failed with a one-line reason and its
    error.txt; the model beside it still runs; the exit code says something failed."""
    plugin = write_plugin(tmp_path / "raiser.py", '''
@models.register("raiser")
class Raiser(BiGAN):
    def __init__(self, **kw):
        super().__init__(**kw)
        raise RuntimeError("cannot build this one")
''')
    code, _, err = cli("run", "digits", "--budget", "smoke", "--no-figures", "--models", "raiser,pca",
                       "--plugin", plugin, "--out", "r", "--set", "eval.references=false")
    assert code == 1 and "Traceback" not in err
    assert "[raiser seed 0] failed: RuntimeError: cannot build this one" in err
    assert "Traceback" in Path("r/raiser/seed0/error.txt").read_text()
    assert json.loads(Path("r/pca/seed0/metrics.json").read_text())["status"] == "ok"


@pytest.mark.parametrize("k,returned,message", [
    (0, "batch.mean()", "it returned Tensor"),
    (1, "None", "it returned NoneType"),
    (2, "{'loss_d': batch.flatten(1).mean(1)}", "'loss_d' is a tensor of shape (64,)"),
    (3, "{'loss_d': 'low'}", "'loss_d' is a str"),
])
def test_train_step_return_is_checked_at_the_first_step(tmp_path, cli, k, returned, message):
    plugin = write_plugin(tmp_path / f"bad_return{k}.py", f'''
@models.register("bad-return-{k}")
class BadReturn(BiGAN):
    def train_step(self, batch, step):
        return {returned}
''')
    code, _, err = cli("run", "digits", "--budget", "smoke", "--no-figures", "--models", f"bad-return-{k}",
                       "--plugin", plugin, "--out", "r",
                       "--fast")  # the fast path reads losses every 50 steps; the check does not wait
    assert code == 1 and "BadReturn.train_step must return a dict of scalar losses" in err and message in err, err
    assert not Path(f"r/bad-return-{k}/seed0/losses.csv").read_text().strip().count("\n")  # no step logged


@pytest.mark.parametrize("override,message", [
    ("model_options.bigan=5", "model_options.bigan must be a mapping"),
    ("model_options.bigan.lrr=1", "has no option lrr"),
    ("model_options.bigbigan.size=huge", "unknown size 'huge'"),
    ("model_options.bigan.lr=-1", "model_options.bigan.lr must be > 0, got -1"),
    ("model_options.bigan.lr=abc", "model_options.bigan.lr must be a number"),
    ("model_options.bigan.adam_beta1=1.5", "must be in [0, 1)"),
    ("arch.z_dim=0", "arch.z_dim must be positive"),
    ("eval.gen_samples=-5", "eval.gen_samples must be positive"),
])
def test_model_config_errors_stop_before_any_data_or_folder(cli, override, message):
    models = "bigbigan" if "bigbigan" in override else "bigan"
    assert_user_error(cli("run", "digits", "--budget", "smoke", "--models", models, "--set", override, "--out", "r"),
                      message)
    assert not Path("r").exists()


@pytest.mark.slow
def test_a_second_writer_of_a_run_stops_at_once(tmp_path, cli):
    """Two commands on one folder: the second exits 2 naming the first's PID; the first finishes
    with a clean log (every step once)."""
    import time

    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    argv = ("run", "digits", *SMOKE, "--out", str(tmp_path / "r"), "--set", "train.steps=60",
            "--set", "train.log_every=1", "--set", "eval.references=false")
    first = subprocess.Popen([sys.executable, "-m", "benchmarks", *argv], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (tmp_path / "r/bigan/seed0/config.json").exists():  # written under the run's lock
            assert first.poll() is None and time.time() < deadline, "the first run did not start"
            time.sleep(0.2)
        t0 = time.time()
        assert_user_error(cli(*argv), "is being written by another process", f"PID {first.pid}")
        assert time.time() - t0 < 15
    finally:
        _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    steps = [row.split(",")[0] for row in (tmp_path / "r/bigan/seed0/losses.csv").read_text().splitlines()[1:]]
    assert steps == [str(s) for s in range(60)]


def test_data_root_for_a_dataset_that_reads_no_files_is_refused(cli, tmp_path):
    assert_user_error(cli("run", "digits", *SMOKE, "--data-root", tmp_path, "--out", "r"),
                      "--data-root", "no files are read")


# --- values the user controls: validated before any work, named in the message (issue 26) ---

def test_more_jobs_than_cores_is_refused_with_the_number(cli, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert_user_error(cli("run", "digits", *SMOKE, "--jobs", "100", "--out", "r"), "--jobs 100", "2 CPU cores",
                      "--jobs 2 or fewer")
    assert not Path("r").exists()


@pytest.mark.parametrize("override,message", [
    ("train.batch_size=100000000000000000000", "train.batch_size = 100000000000000000000 is too large"),
    ("eval.gen_samples=1e20", "'eval.gen_samples' must be an integer, got 1e+20"),
    ("eval.eval_batch_size=2.5", "'eval.eval_batch_size' must be an integer, got 2.5"),
    ("eval.inception_samples=5000000", "eval.inception_samples = 5000000 is too large: use at most 1000000"),
    ("train.batch_size=5000", "train.batch_size = 5000 is larger than the digits training split"),
])
def test_sizes_beyond_the_data_or_memory_are_refused(cli, override, message):
    assert_user_error(cli("run", "digits", *SMOKE, "--set", override, "--out", "r"), message)
    assert not Path("r").exists()


def test_sizes_are_bounded_by_this_machines_memory(cli, monkeypatch):
    monkeypatch.setattr("benchmarks.training.build.physical_memory", lambda: 2**20)  # a 1 MiB machine
    assert_user_error(cli("run", "digits", *SMOKE, "--out", "r"), "does not fit this machine", "use at most")
    assert not Path("r").exists()


@pytest.mark.parametrize("args,message", [
    (("--seeds", "4294967296"), "Seed 4294967296 is out of range"),
    (("--set", "seeds=[-1]"), "Seed -1 is out of range: seeds must be integers from 0 to 4294967295"),
    (("--set", "seeds=[\"a\"]"), "Seeds must be a non-empty list of integers, got ['a']"),
    (("--set", "models=[1]"), "Models must be a list of model names, got 1"),
    (("--set", "model_options={1: 2}"), "'model_options' holds the key 1"),
    (("--set", "model_options.bigan={1: 2}"), "'model_options.bigan' holds the key 1"),
    (("--set", "dataset_options={1: 2}"), "'dataset_options' holds the key 1"),
    (("--set", "eval.probe_labels=[0, 10]"), "eval.probe_labels must be a list of distinct positive label counts"),
    (("--set", "eval.probe_labels=[10, 10]"), "eval.probe_labels must be a list of distinct positive label counts"),
])
def test_set_values_of_the_wrong_type_or_range(cli, args, message):
    smoke = [a for a in SMOKE if a not in ("--models", "bigan")] if "models=" in args[1] else SMOKE  # --models wins
    assert_user_error(cli("run", "digits", *smoke, *args, "--out", "r"), message)
    assert not Path("r").exists()


def test_repeated_models_and_seeds_run_once():
    from benchmarks.config import load_config

    cfg = load_config("digits", "smoke", models=["pca", "autoencoder", "pca"], seeds=[1, 0, 1])
    assert cfg.models == ("pca", "autoencoder") and cfg.seeds == (1, 0)


def test_repeated_models_and_seeds_under_jobs_do_not_collide(cli, monkeypatch):
    """`--models pca,pca --seeds 0,0 --jobs 2` is one run: no second shard writes it."""
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    code, _, err = cli("run", "digits", "--budget", "smoke", "--no-figures", "--models", "pca,pca", "--seeds", "0,0",
                       "--jobs", "2", "--set", "eval.references=false", "--out", "r")
    assert code == 0 and "being written by another process" not in err, err
    assert [p.name for p in Path("r").iterdir() if p.is_dir()] == ["pca"]


def test_a_model_name_that_is_not_a_folder_name_is_refused(cli, tmp_path):
    plugin = write_plugin(tmp_path / "team.py", '@models.register("team/ae")\nclass TeamAE(BiGAN):\n    pass\n')
    assert_user_error(cli("run", "digits", *SMOKE, "--plugin", plugin, "--models", "team/ae", "--out", "r"),
                      "team.py", "'team/ae' cannot be a results folder name", "letters, digits")
    assert not Path("r").exists()


def test_a_plugin_calling_sys_exit_is_an_error_not_a_silent_exit(cli, tmp_path):
    at_import = write_plugin(tmp_path / "quits.py", "import sys\nsys.exit(3)\n")
    assert_user_error(cli("list-models", "--plugin", at_import), "quits.py", "called sys.exit(3)", "leave out --plugin")
    in_model = write_plugin(tmp_path / "exits.py", '''
import sys

@models.register("exiter")
class Exiter(models.get("autoencoder")):
    def train_step(self, batch, step):
        sys.exit(4)
''')
    code, _, err = cli("run", "digits", "--budget", "smoke", "--no-figures", "--models", "exiter,pca",
                       "--plugin", in_model, "--out", "r", "--set", "eval.references=false")
    assert code == 1 and "Traceback" not in err
    assert "[exiter seed 0] failed: the model called sys.exit(4)" in err, err
    assert json.loads(Path("r/pca/seed0/metrics.json").read_text())["status"] == "ok"


def test_the_recorded_command_is_shell_quoted(cli, monkeypatch):
    import shlex

    argv = ["run", "digits", "--budget", "smoke", "--no-figures", "--models", "pca", "--set", "eval.references=false",
            "--set", "eval.truncation=[]", "--out", "my runs"]
    monkeypatch.setattr("sys.argv", [str(Path("benchmarks/__main__.py").resolve()), *argv])
    assert cli(*argv)[0] == 0
    command = json.loads(Path("my runs/pca/seed0/config.json").read_text())["command"]
    assert shlex.split(command) == ["python", "-m", "benchmarks", *argv]


def test_perf_writes_under_runs_by_default():
    from benchmarks.cli import build_parser

    assert build_parser().parse_args(["perf", "digits"]).out == "runs/perf"  # git-ignored; results/perf is committed
