"""Finished runs used again: the Python API (load_run, load_study), the `sample` and `encode`
commands, and the opt-in TensorBoard log. One smoke run of each kind is trained per module and
shared (copied where a test damages it)."""
import csv
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.utils import make_grid

import metrics
from benchmarks import load_run, load_study
from benchmarks.core.errors import UserError
from benchmarks.data import load_dataset
from benchmarks.data.images import read_images
from benchmarks.evaluation.figures import to_unit
from benchmarks.core.protocol import subset
from tests.helpers import ROOT, link_shared_caches

# digits at the smoke budget (30 steps, tracked every 10), without the evaluation these tests do not read
SMOKE = ["run", "digits", "--budget", "smoke", "--no-figures", "--set", "eval.truncation=[]",
         "--set", "eval.references=false", "--set", "eval.probe_labels=[]", "--set", "eval.gen_samples=200"]


PLUGIN = '''import models
from models.autoencoder import Autoencoder


@models.register("api-test-ae")
class PluginAutoencoder(Autoencoder):
    """The autoencoder, from a plugin file."""
'''


@pytest.fixture(scope="module")
def trained(tmp_path_factory, _shared_caches):
    """A results folder with bigan seed 0, trained with tensorboard unimportable and no --tensorboard,
    and api-test-ae seed 0 (a plugin's autoencoder, plugin file beside the folder), with --tensorboard."""
    from benchmarks.cli import main

    root = tmp_path_factory.mktemp("api")
    (root / "api_plugin.py").write_text(PLUGIN)
    link_shared_caches(root / "cache", _shared_caches)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BIGAN_BENCH_CACHE", str(root / "cache"))
        with pytest.MonkeyPatch.context() as blocked:  # an import of tensorboard would raise ImportError
            for module in ("tensorboard", "torch.utils.tensorboard"):
                blocked.setitem(sys.modules, module, None)
            assert main([*SMOKE, "--models", "bigan", "--out", str(root / "r")]) == 0
        assert main([*SMOKE, "--models", "api-test-ae", "--plugin", str(root / "api_plugin.py"), "--tensorboard",
                     "--out", str(root / "r")]) == 0
    return root / "r"


@pytest.fixture
def run_dir(trained):
    return trained / "bigan" / "seed0"


def _png(path):
    return np.asarray(Image.open(path))


def _as_png_grid(samples):
    """What save_image writes for `samples` in [-1, 1], 8 per row, as uint8 pixels (H, W, 3)."""
    grid = make_grid(to_unit(samples), nrow=8)
    return grid.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


@pytest.mark.slow
def test_a_loaded_run_reconstructs_and_samples_as_the_run_recorded(run_dir):
    run = load_run(run_dir, device="cpu")
    assert not run.model.training and run.device == torch.device("cpu") and run.name == "bigan" and run.seed == 0
    assert run.metrics["status"] == "ok" and run.provenance["checkpoint_step"] == 30
    assert {"command", "started", "versions", "runtime"} <= set(run.provenance) and run.provenance["versions"]["torch"]
    data = run.data()  # the split it was scored on
    rec = run.decode(run.encode(data.test.x))
    mse = metrics.reconstruction_mse(to_unit(data.test.x.float() / 127.5 - 1), to_unit(rec))
    assert mse == pytest.approx(run.metrics["recon_mse"], rel=1e-6, abs=0)
    assert np.array_equal(_as_png_grid(run.sample(64)), _png(run_dir / "samples.png"))  # the fixed evaluation noise
    assert not torch.equal(run.sample(8, seed=1), run.sample(8))
    with pytest.raises(UserError, match="uniform prior"):  # BiGAN's z ~ U(-1, 1): no tails to truncate
        run.sample(8, truncation=0.5)


@pytest.mark.slow
def test_truncated_samples_keep_z_inside_the_threshold(trained):
    run = load_run(trained / "api-test-ae" / "seed0", device="cpu")  # an autoencoder: a Gaussian prior
    g = torch.Generator().manual_seed(0)
    from benchmarks.evaluation.evaluate import truncated_latent

    z = truncated_latent(run.model, 300, 0.5, g)
    assert z.abs().max() <= 0.5
    assert torch.equal(run.sample(300, seed=0, truncation=0.5), run.decode(z))
    assert not torch.equal(run.sample(300, seed=0, truncation=0.5), run.sample(300, seed=0))


@pytest.mark.slow
def test_the_readme_example_runs(run_dir, tmp_path):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Reading the results"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) == 5
    shutil.copytree(run_dir, tmp_path / "runs" / "digits-quick" / "bigan" / "seed0")  # the path it names
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["codes"].shape == (450, 32) and scope["images"].shape[1:] == (1, 16, 16)


@pytest.mark.slow
def test_sample_writes_the_runs_grid(cli, run_dir):
    code, out, err = cli("sample", run_dir, "--out", "grid.png")
    assert code == 0, err
    assert np.array_equal(_png("grid.png"), _png(run_dir / "samples.png"))
    code, _, err = cli("sample", run_dir, "--n", "10", "--seed", "3", "--out", "s.npy")
    assert code == 0, err
    s = np.load("s.npy")
    assert s.shape == (10, 1, 16, 16) and s.min() >= -1 and s.max() <= 1
    assert np.array_equal(s, load_run(run_dir, device="cpu").sample(10, seed=3).numpy())
    code, _, err = cli("sample", run_dir, "--truncation", "0.5")
    assert code == 2 and "uniform prior" in err and "Traceback" not in err


def _write_pngs(folder, x):
    folder.mkdir()
    for i, img in enumerate(x):
        Image.fromarray(img[0].numpy()).save(folder / f"{i:04d}.png")


@pytest.mark.slow
def test_encode_writes_codes_with_the_runs_probe_accuracy(cli, run_dir, tmp_path):
    run = load_run(run_dir, device="cpu")
    data = run.data()
    x_tr, y_tr = subset(data.train, run.config["eval"]["probe_max_train"])  # the probe's train items
    _write_pngs(tmp_path / "train", x_tr)
    _write_pngs(tmp_path / "test", data.test.x)
    for split in ("train", "test"):
        code, out, err = cli("encode", run_dir, "--images", tmp_path / split, "--out", f"{split}.npy")
        assert code == 0, err
    f_tr, f_te = torch.from_numpy(np.load("train.npy")), torch.from_numpy(np.load("test.npy"))
    assert f_te.shape == (len(data.test.x), 32)
    assert Path("test.txt").read_text().splitlines()[:2] == ["0000.png", "0001.png"]
    # A PNG holds the uint8 pixels exactly and the codes are computed in the evaluation's batches,
    # so they are the evaluation's codes bit for bit, and the probe (scikit-learn's L-BFGS, seeded)
    # is deterministic on the same inputs: the accuracy is the recorded one, not merely close to it.
    assert torch.equal(f_te, run.encode(data.test.x))
    probe = metrics.linear_probe(f_tr, y_tr, f_te, data.test.y, device="cpu")
    assert probe["accuracy"] == run.metrics["probe_acc"]


def test_pictures_of_other_sizes_are_prepared_as_the_dataset_prepares_its_own(tmp_path):
    digits = load_dataset("digits")
    (tmp_path / "d").mkdir()
    Image.fromarray(digits.test.x[0, 0].numpy()).resize((64, 64), Image.NEAREST).save(tmp_path / "d" / "big.png")
    Image.new("RGB", (5, 9), (255, 255, 255)).save(tmp_path / "d" / "white.jpg")
    (tmp_path / "d" / "notes.txt").write_text("not a picture")
    x, files = read_images(tmp_path / "d", "digits", (1, 16, 16))
    assert [f.name for f in files] == ["big.png", "white.jpg"] and x.dtype == torch.uint8
    assert (x[0].float() - digits.test.x[0].float()).abs().mean() < 20  # averaged to 8x8 and upsampled back
    assert x[1].min() == 255
    from tests.helpers import celeba_image

    (tmp_path / "c").mkdir()
    celeba_image(1).save(tmp_path / "c" / "face.png")
    Image.new("RGB", (300, 100), (0, 0, 0)).save(tmp_path / "c" / "wide.png")
    x, _ = read_images(tmp_path / "c", "celeba64", (3, 64, 64))
    from benchmarks.data.celeba import _decode_one

    assert np.array_equal(x[0].numpy(), _decode_one(tmp_path / "c" / "face.png"))  # the loader's crop and resize
    (tmp_path / "f").mkdir()
    Image.new("L", (28, 28), 200).save(tmp_path / "f" / "item.png")
    x, _ = read_images(tmp_path / "f", "fashion-mnist", (1, 32, 32))
    assert x[0, 0, 2:30, 2:30].min() == 200 and x[0, 0, :2].max() == 0  # padded with black as the loader pads
    with pytest.raises(UserError, match="points"):
        read_images(tmp_path / "f", "toy2d", (2,))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no pictures"):
        read_images(tmp_path / "empty", "digits", (1, 16, 16))
    with pytest.raises(UserError, match="is not a folder"):
        read_images(tmp_path / "missing", "digits", (1, 16, 16))


@pytest.mark.slow
def test_tensorboard_log_holds_the_losses_scores_and_pictures(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = trained / "api-test-ae" / "seed0"
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    logged = list(csv.DictReader(open(run_dir / "losses.csv")))
    loss = next(k for k in logged[0] if k != "step")
    board = events.Scalars(f"loss/{loss}")
    assert [e.step for e in board] == [int(r["step"]) for r in logged]  # every row of the loss log
    assert [e.value for e in board] == pytest.approx([float(r[loss]) for r in logged], rel=1e-5)
    tracked = list(csv.DictReader(open(run_dir / "track.csv")))
    assert [e.step for e in events.Scalars("track/fd_digits")] == [int(r["step"]) for r in tracked] == [9, 19, 29]
    for tag in ("images/samples", "images/reconstructions"):
        pictures = events.Images(tag)
        assert [e.step for e in pictures] == [9, 19, 29] and pictures[0].width > 16


@pytest.mark.slow
def test_without_tensorboard_no_log_is_written(trained):
    # The fixture trained this run with tensorboard unimportable: it trained, and wrote no log.
    assert json.loads((trained / "bigan" / "seed0" / "metrics.json").read_text())["status"] == "ok"
    assert not list((trained / "bigan").rglob("events.out.tfevents.*"))


def test_tensorboard_missing_is_said_before_anything_trains(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    code, _, err = cli(*SMOKE, "--models", "bigan", "--tensorboard", "--out", "r")
    assert code == 2 and "pip install 'bigan-bench[tensorboard]'" in err and "Traceback" not in err
    assert not Path("r").exists()


def _copy(run_dir, tmp_path):
    return Path(shutil.copytree(run_dir, tmp_path / "copy" / "bigan" / "seed0"))


@pytest.mark.slow
def test_bad_folders_and_damaged_runs_are_refused_with_the_fix(cli, run_dir, trained, tmp_path):
    with pytest.raises(UserError, match="is not a folder"):
        load_run(tmp_path / "nowhere")
    with pytest.raises(UserError, match=r"is a results folder; pass one of its runs, e\.g\. .*seed0"):
        load_run(trained)
    copy = _copy(run_dir, tmp_path)
    ckpt = (copy / "checkpoint.pt").read_bytes()
    (copy / "checkpoint.pt").write_bytes(ckpt[:len(ckpt) // 2])
    with pytest.raises(UserError, match="checkpoint.pt is damaged"):
        load_run(copy)
    code, _, err = cli("sample", copy)
    assert code == 2 and "damaged" in err and "Traceback" not in err
    state = torch.load(run_dir / "checkpoint.pt", weights_only=False)
    import datetime

    torch.save({**state, "written": datetime.date(2020, 1, 1)}, copy / "checkpoint.pt")  # a pickled object: refused
    with pytest.raises(UserError, match="datetime.date"):
        load_run(copy)
    torch.save({**state, "step": 20}, copy / "checkpoint.pt")
    with pytest.raises(UserError, match="at step 20 of 30: the run is unfinished"):
        load_run(copy)
    (copy / "metrics.json").unlink()
    with pytest.raises(UserError, match="not finished: it has no metrics.json.*resumes it"):
        load_run(copy)
    code, _, err = cli("encode", copy, "--images", tmp_path, "--out", "c.npy")
    assert code == 2 and "not finished" in err


@pytest.mark.slow
def test_a_plugin_run_loads_from_its_plugin_and_is_refused_once_the_plugin_changed(trained):
    plugin, run_dir = trained.parent / "api_plugin.py", trained / "api-test-ae" / "seed0"
    run = load_run(run_dir, device="cpu", plugins=[plugin])
    assert run.base_model == "api-test-ae" and type(run.model).__name__ == "PluginAutoencoder"
    data = run.data()
    rec = run.decode(run.encode(data.test.x))
    mse = metrics.reconstruction_mse(to_unit(data.test.x.float() / 127.5 - 1), to_unit(rec))
    assert mse == pytest.approx(run.metrics["recon_mse"], rel=1e-6, abs=0)
    try:
        plugin.write_text(PLUGIN + "# edited since\n")
        with pytest.raises(UserError, match="trained with another source of model 'api-test-ae'.*plugin_source"):
            load_run(run_dir, plugins=[plugin])
    finally:
        plugin.write_text(PLUGIN)


@pytest.mark.slow
def test_a_run_of_a_changed_plugin_is_refused(run_dir, tmp_path):
    copy = _copy(run_dir, tmp_path)
    record = json.loads((copy / "config.json").read_text())
    record["config"]["plugin_source"] = "0123456789abcdef"  # as if trained from a plugin file of that content
    (copy / "config.json").write_text(json.dumps(record))
    with pytest.raises(UserError, match="plugin_source: '0123456789abcdef' -> None"):
        load_run(copy)
    record["config"].update(model="my-gan", plugin_source=None)
    record["command"] = "python -m benchmarks run digits --plugin my_gan.py"
    (copy / "config.json").write_text(json.dumps(record))
    with pytest.raises(UserError, match="'my-gan', which is not registered: it was trained with --plugin my_gan.py"):
        load_run(copy)


@pytest.mark.slow
def test_load_study_gives_each_chosen_setting_with_its_runs(run_dir, tmp_path):
    study = tmp_path / "study"
    shutil.copytree(run_dir, study / "final" / "bigan" / "seed0")
    (study / "select").mkdir()
    selection = {  # as the study code writes it, and what another version might add
        "bigan": {"representation": {"trial": 0, "arm": "bigan.t00", "options": {}, "value": 0.5},
                  "generation": {"trial": 3, "arm": "bigan.t03", "row": "bigan.t03", "options": {"lr": 1e-3},
                                 "value": 60.0}},
        "ali": {"generation": None},
        "version": 2,
    }
    (study / "selection.json").write_text(json.dumps(selection))
    s = load_study(study)
    rep = s.choice("bigan", "representation")
    assert rep.row == "bigan" and rep.trial == 0 and rep.runs == (study / "final" / "bigan" / "seed0",)
    assert rep.metrics()[0]["status"] == "ok" and rep.load(device="cpu").seed == 0
    gen = s.choice("bigan", "generation")
    assert gen.row == "bigan.t03" and gen.options == {"lr": 1e-3} and gen.value == 60.0 and gen.runs == ()
    with pytest.raises(UserError, match="holds no runs of 'bigan.t03'"):
        gen.load()
    assert s.unchosen == (("ali", "generation"),)
    with pytest.raises(UserError, match="chose no setting of 'ali'"):
        s.choice("ali", "generation")
    (study / "selection.json").write_text("[1, 2")
    with pytest.raises(UserError, match="selection.json is unreadable"):
        load_study(study)
    with pytest.raises(UserError, match="holds no selection.json"):
        load_study(tmp_path)


@pytest.mark.slow
def test_an_untrained_arm_is_its_initialisation_under_the_runs_seed(run_dir, tmp_path):
    import models
    from benchmarks.core.runtime import Runtime

    copy = _copy(run_dir, tmp_path)
    record = json.loads((copy / "config.json").read_text())
    record["config"]["arm_steps"] = 0  # a study's untrained control: trained for 0 steps, no checkpoint saved
    (copy / "config.json").write_text(json.dumps(record))
    (copy / "checkpoint.pt").unlink()
    before = torch.get_rng_state()
    run = load_run(copy, device="cpu")
    assert torch.equal(torch.get_rng_state(), before)  # the caller's random streams are left alone
    Runtime.seed_everything(0)  # what `run` does before it builds a run's model
    args = record["config"]["model_args"]
    fresh = models.build("bigan", **{**args, "data_shape": tuple(args["data_shape"])})
    assert all(torch.equal(v, run.model.state_dict()[k]) for k, v in fresh.state_dict().items())
    assert run.provenance["checkpoint_step"] == 0


def test_a_resumed_runs_log_shows_each_step_once(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from benchmarks.core.runtime import Runtime
    from benchmarks.training.board import Board

    for start, stop, value in ((0, 10, 1.0), (6, 10, 2.0)):  # killed after step 9, resumed from the step-6 checkpoint
        board = Board(tmp_path / "log", Runtime("cpu"), 0, None, 64)
        board.begin(start)
        for step in range(start, stop):
            board.scalars("loss", step, {"loss_d": value})
        board.close()
    events = EventAccumulator(str(tmp_path / "log"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("loss/loss_d")] == [(s, 1.0) for s in range(6)] + \
        [(s, 2.0) for s in range(6, 10)]
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.compat.proto.event_pb2 import SessionLog

    first, second = sorted((tmp_path / "log").glob("events.out.tfevents.*"))
    starts = [e.step for e in EventFileLoader(str(second)).Load() if e.session_log.status == SessionLog.START]
    assert starts == [6]  # TensorBoard's purge: what the first file logged from step 6 on is dropped


def test_the_log_goes_into_the_run_folder_or_under_log_dir_a_sweeps_phases_apart(tmp_path):
    from argparse import Namespace

    from benchmarks.cli.run import board_root

    out, logs = tmp_path / "runs" / "digits-quick", tmp_path / "logs"
    assert board_root(Namespace(tensorboard=False, log_dir=None, command="run"), out) is None
    assert board_root(Namespace(tensorboard=True, log_dir=None, command="run"), out) == out  # out/<model>/seed<k>
    assert board_root(Namespace(tensorboard=False, log_dir=logs, command="run"), out) == logs
    assert board_root(Namespace(tensorboard=True, log_dir=logs, command="sweep"), tmp_path / "study" / "final") \
        == logs / "final"
