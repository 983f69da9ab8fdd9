"""Fault injection: what a results folder survives. Each case asserts the exit code, the message
and that finished runs are byte-identical afterwards; an interrupted run resumes exactly.

One shared uninterrupted reference (autoencoder and pca, digits smoke) keeps the cases to a few
seconds each."""
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from metrics import cache
from tests.helpers import ROOT, assert_user_error, link_shared_caches

ARGS = ("run", "digits", "--budget", "smoke", "--no-figures", "--models", "autoencoder,pca",
        "--set", "eval.references=false", "--set", "train.checkpoint_every=10")
FILES = ("metrics.json", "config.json", "checkpoint.pt", "losses.csv")


def snapshot(folder, runs=("autoencoder", "pca")):
    return {(r, f): (Path(folder) / r / "seed0" / f).read_bytes() for r in runs for f in FILES}


def weights(folder, run="autoencoder"):
    return torch.load(Path(folder) / run / "seed0" / "checkpoint.pt", weights_only=False)["model"]


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def _reference_dir(tmp_path_factory, _shared_caches):
    """The uninterrupted runs, trained once per module; each test gets a copy."""
    from benchmarks.cli import main

    root = tmp_path_factory.mktemp("faults")
    link_shared_caches(root / "cache", _shared_caches)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BIGAN_BENCH_CACHE", str(root / "cache"))
        assert main([*ARGS, "--out", str(root / "ref")]) == 0
    return root / "ref"


@pytest.fixture
def reference(_reference_dir):
    shutil.copytree(_reference_dir, "ref")  # into this test's working folder
    return snapshot("ref")


@pytest.mark.slow
def test_truncated_metrics_json_is_evaluated_again_from_the_checkpoint(cli, reference):
    assert cli(*ARGS, "--out", "ref")[0] == 0  # nothing to do
    path = Path("ref/autoencoder/seed0/metrics.json")
    path.write_bytes(path.read_bytes()[:40])
    code, _, err = cli(*ARGS, "--out", "ref")
    assert code == 0 and "metrics.json is unreadable" in err and "Traceback" not in err
    new, old = json.loads(path.read_text()), json.loads(reference[("autoencoder", "metrics.json")])
    for k in ("recon_mse", "probe_acc", "fd_digits", "g_steps"):
        assert new[k] == old[k], k  # the same checkpoint, the same evaluation
    assert snapshot("ref", ("pca",)) == {k: v for k, v in reference.items() if k[0] == "pca"}


@pytest.mark.slow
def test_truncated_config_json_is_refused_with_the_narrow_fix(cli, reference):
    path = Path("ref/autoencoder/seed0/config.json")
    path.write_bytes(path.read_bytes()[:30])
    assert_user_error(cli(*ARGS, "--out", "ref"), "config.json is unreadable", "--force --models autoencoder --seeds 0")
    assert snapshot("ref", ("pca",)) == {k: v for k, v in reference.items() if k[0] == "pca"}
    assert cli(*ARGS, "--out", "ref", "--force", "--models", "autoencoder")[0] == 0
    saved = torch.load(__import__("io").BytesIO(reference[("autoencoder", "checkpoint.pt")]), weights_only=False)
    assert same_weights(weights("ref"), saved["model"])


@pytest.mark.slow
def test_truncated_benchmark_json_is_recorded_again(cli, reference):
    Path("ref/benchmark.json").write_text('{"conf')
    code, out, err = cli("report", "ref")
    assert code == 0 and "unreadable" in Path("ref/table.md").read_text()
    code, _, err = cli(*ARGS, "--out", "ref")
    assert code == 0 and "benchmark.json is unreadable" in err
    assert json.loads(Path("ref/benchmark.json").read_text())["config"]["budget"] == "smoke"
    assert snapshot("ref") == reference


def test_damaged_loss_log_of_an_unfinished_run_keeps_its_readable_rows(cli, monkeypatch, tmp_path):
    """Cut off mid-row: the resume warns, drops what it cannot read, and logs every later step."""
    plugin = tmp_path / "stop.py"
    plugin.write_text("import os\nimport models\nfrom models.autoencoder import Autoencoder\n\n"
                      "@models.register('stop-ae')\nclass StopAE(Autoencoder):\n"
                      "    def train_step(self, batch, step):\n"
                      "        if step == 15 and os.path.exists(os.environ['STOP_FLAG']):\n"
                      "            os.remove(os.environ['STOP_FLAG'])\n"
                      "            raise KeyboardInterrupt\n"
                      "        return super().train_step(batch, step)\n")
    flag = tmp_path / "flag"
    flag.write_text("1")
    monkeypatch.setenv("STOP_FLAG", str(flag))
    args = ("run", "digits", "--budget", "smoke", "--no-figures", "--models", "stop-ae", "--plugin", plugin,
            "--out", "r", "--set", "eval.references=false", "--set", "train.checkpoint_every=10",
            "--set", "train.log_every=1")
    assert cli(*args)[0] == 130
    log = Path("r/stop-ae/seed0/losses.csv")
    text = log.read_text()
    log.write_text(text[:-7])  # the last row loses its tail
    code, _, err = cli(*args)
    assert code == 0 and "losses.csv: 1 unreadable row(s) dropped" in err
    steps = [int(r.split(",")[0]) for r in log.read_text().splitlines()[1:]]
    assert steps == [s for s in range(30) if s != 9]  # step 9 was the damaged row


@pytest.mark.slow
def test_leftover_temp_files_are_removed_and_ignored(cli, reference):
    run = Path("ref/autoencoder/seed0")
    (run / ".checkpoint.pt.abc123.tmp").write_bytes(b"half a checkpoint")
    (run / "error.txt").write_text("Traceback ... of an earlier failure")
    (run / "metrics.json").unlink()  # so the run is visited (evaluated again)
    assert cli(*ARGS, "--out", "ref")[0] == 0
    assert not list(run.glob(".*.tmp")) and not (run / "error.txt").exists()  # ok now: no stale error
    assert run.joinpath("checkpoint.pt").read_bytes() == reference[("autoencoder", "checkpoint.pt")]


def _patch_writer(monkeypatch, fail):
    """Every atomic write (checkpoints, logs, tables) goes through metrics.cache.atomic_write;
    `fail(path)` returns the OSError to raise instead, or None to write."""
    real = cache.atomic_write

    def writer(path, write):
        err = fail(Path(path))
        if err is not None:
            raise err
        return real(path, write)

    monkeypatch.setattr(cache, "atomic_write", writer)
    monkeypatch.setattr("benchmarks.core.io.atomic_write", writer)


def _os_error(code, path):
    return OSError(code, os.strerror(code), str(path))


@pytest.mark.slow
def test_full_disk_is_a_user_error_and_the_rerun_resumes_exactly(cli, reference):
    """ENOSPC on the second checkpoint write: rc 2 naming the path and the fix; the first
    checkpoint and every finished run are intact; the rerun ends where an uninterrupted run does."""
    calls = {"n": 0}

    def second_checkpoint(path):
        calls["n"] += path.name == "checkpoint.pt"
        return _os_error(errno.ENOSPC, path) if path.name == "checkpoint.pt" and calls["n"] == 2 else None

    with pytest.MonkeyPatch.context() as mp:
        _patch_writer(mp, second_checkpoint)
        assert_user_error(cli(*ARGS, "--out", "full"), "No space left on device", "checkpoint.pt", "Free space")
    assert torch.load("full/autoencoder/seed0/checkpoint.pt", weights_only=False)["step"] == 10
    assert cli(*ARGS, "--out", "full")[0] == 0
    assert same_weights(weights("full"), weights("ref"))
    new, old = (json.loads(Path(d, "autoencoder/seed0/metrics.json").read_text()) for d in ("full", "ref"))
    assert new["recon_mse"] == old["recon_mse"] and new["probe_acc"] == old["probe_acc"]


@pytest.mark.slow
def test_full_disk_while_reporting_keeps_the_runs(cli, reference, monkeypatch):
    _patch_writer(monkeypatch, lambda p: _os_error(errno.ENOSPC, p) if p.name == "table.md" else None)
    assert_user_error(cli("report", "ref"), "No space left on device", "table.md")
    assert snapshot("ref") == reference


@pytest.mark.slow
def test_unwritable_output_folder_is_a_user_error(cli, reference):
    assert_user_error(cli(*ARGS, "--out", "/proc/bigan-bench-results"), "cannot write", "/proc/bigan-bench-results",
                      "choose another --out")
    # A read-only folder (root ignores chmod, so the writer is made to see EROFS).
    with pytest.MonkeyPatch.context() as mp:
        _patch_writer(mp, lambda p: _os_error(errno.EROFS, p))
        assert_user_error(cli("report", "ref"), "Read-only file system", "Make the folder writable")
    assert snapshot("ref") == reference


@pytest.mark.slow
def test_kill_9_mid_run_resumes_exactly(tmp_path, cli, reference):
    """kill -9 of a run (after its first checkpoint, so possibly mid-write of the next): the rerun
    of the same command finishes with the weights of the uninterrupted reference."""
    # The killed process runs the first steps, this one the rest and the reference: all three use
    # one thread count, since the sums of a convolution differ in their last bits between counts.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks", *ARGS, "--out", str(tmp_path / "k"),
                             "--models", "autoencoder"], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (tmp_path / "k/autoencoder/seed0/checkpoint.pt").exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert cli(*ARGS, "--out", "k", "--models", "autoencoder")[0] == 0
    assert same_weights(weights("k"), weights("ref"))
    assert not list(Path("k/autoencoder/seed0").glob(".*.tmp"))


@pytest.mark.slow
def test_truncated_checkpoint_of_an_unfinished_run_is_refused_and_kept(cli, reference):
    run = Path("ref/autoencoder/seed0")
    (run / "metrics.json").unlink()
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[:1000])
    assert_user_error(cli(*ARGS, "--out", "ref"), "checkpoint.pt cannot be read", "--force")
    assert (run / "checkpoint.pt").read_bytes() == data[:1000]  # left in place for the user to decide
    assert snapshot("ref", ("pca",)) == {k: v for k, v in reference.items() if k[0] == "pca"}


# --- records, caches and figures of the wrong shape (issue 26) -------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("text", ["[1, 2]", "null", "5", "{}"])
def test_metrics_json_of_the_wrong_shape_is_evaluated_again(cli, reference, text):
    path = Path("ref/autoencoder/seed0/metrics.json")
    path.write_text(text)
    code, _, err = cli(*ARGS, "--out", "ref")
    assert code == 0 and "metrics.json is unreadable" in err and "Traceback" not in err, err
    new, old = json.loads(path.read_text()), json.loads(reference[("autoencoder", "metrics.json")])
    assert all(new[k] == old[k] for k in ("recon_mse", "probe_acc", "fd_digits", "g_steps"))
    assert snapshot("ref", ("pca",)) == {k: v for k, v in reference.items() if k[0] == "pca"}


@pytest.mark.slow
@pytest.mark.parametrize("text", ["[]", "null", '{"config": 5}', '{"config": {}, "resumed": 3}'])
def test_config_json_of_the_wrong_shape_is_refused_with_the_narrow_fix(cli, reference, text):
    Path("ref/autoencoder/seed0/config.json").write_text(text)
    assert_user_error(cli(*ARGS, "--out", "ref"), "config.json is unreadable", "--force --models autoencoder --seeds 0")
    assert snapshot("ref", ("pca",)) == {k: v for k, v in reference.items() if k[0] == "pca"}


@pytest.mark.slow
def test_benchmark_json_of_the_wrong_shape_is_recorded_again(cli, reference):
    Path("ref/benchmark.json").write_text('{"config": [1]}')
    code, _, err = cli(*ARGS, "--out", "ref")
    assert code == 0 and "benchmark.json is unreadable" in err and "Traceback" not in err, err
    assert json.loads(Path("ref/benchmark.json").read_text())["config"]["budget"] == "smoke"
    assert snapshot("ref") == reference


@pytest.mark.slow
def test_damaged_run_figures_are_skipped_with_a_warning(cli, reference):
    """A cut-off and an empty run picture: `run` and `report` on the finished folder exit 0, name
    each damaged file, and draw the montage from the pictures that can be read. (`run` first: once
    a report has been written over the damaged folder, a `run` that finds nothing changed leaves it
    as it is, and says so.)"""
    ae, pca = Path("ref/autoencoder/seed0/samples.png"), Path("ref/pca/seed0/samples.png")
    ae.write_bytes(ae.read_bytes()[:len(ae.read_bytes()) // 2])
    pca.write_bytes(b"")
    run = [a for a in ARGS if a != "--no-figures"] + ["--out", "ref"]
    for argv in (run, ("report", "ref")):
        code, _, err = cli(*argv)
        assert code == 0 and "Traceback" not in err, err
        assert f"{ae} is unreadable" in err and f"{pca} is unreadable" in err, err
        assert Path("ref/plots/recon.png").stat().st_size and not Path("ref/plots/samples.png").exists()
    code, out, _ = cli(*run)
    assert code == 0 and "report unchanged" in out
    assert snapshot("ref") == reference


def test_figures_are_written_atomically(tmp_path, monkeypatch):
    """A picture whose writing stops halfway (a kill, a full disk) leaves the previous file, and
    no temporary one: both writers, the run's tensors and the report's matplotlib figures."""
    import matplotlib.pyplot as plt

    from benchmarks.evaluation import figures
    from benchmarks.reporting import plots

    def half_then_fail(image_or_none, f, **options):
        f.write(b"\x89PNG half")
        raise RuntimeError("stopped mid-write")

    (tmp_path / "run").mkdir()
    path = tmp_path / "run" / "samples.png"
    path.write_bytes(b"the previous picture")
    fig = plt.figure()
    fig.savefig = lambda f, **options: half_then_fail(None, f)
    with pytest.raises(RuntimeError):
        plots.save_figure(fig, path)
    monkeypatch.setattr(figures, "save_image", half_then_fail)
    with pytest.raises(RuntimeError):
        figures.save_png(path, torch.zeros(1, 1, 2, 2))
    assert path.read_bytes() == b"the previous picture" and list(path.parent.iterdir()) == [path]


def _stats(tmp_path, calls):
    """reference_stats of 20 random 4-d features, counting how often they are computed."""
    from types import SimpleNamespace

    from metrics.inception import reference_stats

    images = torch.arange(20 * 4, dtype=torch.uint8).reshape(20, 1, 2, 2)
    data = SimpleNamespace(name="tiny", meta={})

    def features(x):
        calls.append(1)
        return x.flatten(1).double() + torch.randn(len(x), 4, generator=torch.Generator().manual_seed(0))

    return reference_stats(images, data, "train", "test-backbone", features, cache_dir=tmp_path / "stats")


@pytest.mark.parametrize("damage", ["five", "empty-dict", "truncated", "wrong-shapes"])
def test_damaged_statistics_cache_entry_is_recomputed_with_one_warning(tmp_path, recwarn, damage):
    calls = []
    first = _stats(tmp_path, calls)
    [path] = (tmp_path / "stats").iterdir()
    assert _stats(tmp_path, calls)["key"] == first["key"] and len(calls) == 1  # a cache hit
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:
        bad = {"five": 5, "empty-dict": {}, "wrong-shapes": {**first, "sigma": torch.zeros(3, 3)}}[damage]
        torch.save(bad, path)
    again = _stats(tmp_path, calls)
    assert len(calls) == 2 and torch.equal(again["mu"], first["mu"]) and torch.equal(again["sigma"], first["sigma"])
    warned = [str(w.message) for w in recwarn if "BIGAN_BENCH_CACHE" in str(w.message)]
    assert len(warned) == 1 and str(path) in warned[0], warned
    assert torch.equal(torch.load(path, weights_only=True)["sigma"], first["sigma"])  # written again


def _tiny_images():
    from types import SimpleNamespace

    from benchmarks.data.registry import Split

    g = torch.Generator().manual_seed(0)
    split = lambda n: Split(torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=g),  # noqa: E731
                            torch.arange(n) % 2)
    return SimpleNamespace(kind="image", name="tiny", meta={}, train=split(16), test=split(8))


def test_damaged_domain_classifier_cache_entry_is_retrained(tmp_path, recwarn, monkeypatch):
    from metrics import domain

    data, trained = _tiny_images(), []
    real_train = domain._train
    monkeypatch.setattr(domain, "_train", lambda *a: trained.append(1) or real_train(*a))
    first = domain.get_domain_classifier(data, "cpu", tmp_path / "domain", progress=False)
    [path] = (tmp_path / "domain").iterdir()
    obj = torch.load(path, weights_only=True)
    for bad in (5, {}, {**obj, "state_dict": {}}, {**obj, "key": "another"}):
        torch.save(bad, path)
        clf = domain.get_domain_classifier(data, "cpu", tmp_path / "domain", progress=False)
        assert clf.key == first.key and torch.equal(clf.features(data.test.x), first.features(data.test.x))
    assert len(trained) == 5  # once, then once per damaged entry
    warned = [str(w.message) for w in recwarn if "BIGAN_BENCH_CACHE" in str(w.message)]
    assert warned and all(str(path) in m for m in warned)


def test_unwritable_cache_is_one_warning_not_a_failure(tmp_path, monkeypatch, recwarn):
    """A cache folder that cannot be written (here a file where a folder should be; the CLI case is
    BIGAN_BENCH_CACHE=/proc/x): every cache computes its entry and goes on, with one warning in all
    naming the variable, never blaming --out."""
    from metrics import cache, domain

    monkeypatch.setattr(cache, "_unwritable", [])  # the warning is once per process
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder")
    data = _tiny_images()
    clf = domain.get_domain_classifier(data, "cpu", blocked / "domain", progress=False)
    stats = _stats(blocked, [])
    assert clf.features(data.test.x).shape == (8, 128) and stats["mu"].shape == (4,)
    warned = [str(w.message) for w in recwarn if "BIGAN_BENCH_CACHE" in str(w.message)]
    assert len(warned) == 1 and "Set BIGAN_BENCH_CACHE to a writable folder" in warned[0] and "--out" not in warned[0]
    assert blocked.read_text() == "a file, not a folder"
