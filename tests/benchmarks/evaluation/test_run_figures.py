"""What evaluation leaves in a run folder besides metrics: the latent figures, the truncation
sweep and the periodic generation metric, and that they are the same for every model."""
import csv
import math
from pathlib import Path

import pytest
import torch

import models
from benchmarks.evaluation.evaluate import truncated_latent
from metrics import nearest_neighbours


def test_truncated_latent_stays_inside_and_keeps_the_stream():
    m = models.build("bigan-qp-simple", data_shape=(2,), z_dim=4, width=8, total_steps=1)
    z = truncated_latent(m, 500, 0.5, torch.Generator().manual_seed(0))
    assert z.shape == (500, 4) and z.abs().max() <= 0.5
    assert z.abs().max() > 0.45  # redrawn values, not clipped ones at the edge
    assert (z.abs() == 0.5).sum() == 0
    free = truncated_latent(m, 500, None, torch.Generator().manual_seed(0))
    assert torch.equal(free, m.sample_latent(500, generator=torch.Generator().manual_seed(0)))
    inside = free.abs() <= 0.5
    assert torch.equal(z[inside], free[inside])  # draws already inside are kept


def test_nearest_neighbours_by_distance_and_by_angle():
    gallery = torch.tensor([[1.0, 0.0], [10.0, 0.5], [0.0, 1.0], [0.9, 0.1]])
    q = gallery[:1]
    assert nearest_neighbours(q, gallery, 2, "euclidean", exclude=[0]).tolist() == [[3, 2]]
    assert nearest_neighbours(q, gallery, 2, "cosine", exclude=[0]).tolist() == [[1, 3]]  # angle, not length
    assert nearest_neighbours(q, gallery, 1, "euclidean").tolist() == [[0]]
    with pytest.raises(ValueError):
        nearest_neighbours(q, gallery, 1, "manhattan")


def _rows(path):
    return list(csv.DictReader(open(path)))


@pytest.mark.slow
def test_images_get_latent_figures_truncation_sweep_and_a_curve(cli):
    code, _, err = cli("run", "digits", "--budget", "smoke", "--models", "bigan,bigan-qp-simple", "--out", "r",
                       "--no-figures")
    assert code == 0, err
    for name in ("interp.png", "neighbours_euclidean.png", "neighbours_cosine.png"):
        for model in ("bigan", "bigan-qp-simple"):
            assert Path(f"r/{model}/seed0/{name}").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    track = _rows("r/bigan/seed0/track.csv")  # smoke: every 10 of 30 steps
    assert [int(r["step"]) for r in track] == [9, 19, 29] and all(float(r["fd_digits"]) > 0 for r in track)
    sweep = _rows("r/bigan-qp-simple/seed0/truncation.csv")
    assert [float(r["threshold"]) for r in sweep] == [0.25, 0.5, 1.0, 1.5, 2.0, math.inf]
    assert all(float(r["fd_digits"]) > 0 and float(r["cs_digits"]) >= 1 for r in sweep)
    assert not Path("r/bigan/seed0/truncation.csv").exists()  # BiGAN's prior is uniform: nothing to truncate


@pytest.mark.slow
def test_tracking_is_outside_training(cli):
    """The curve costs evaluation time, never training: losses are the same with and without it."""
    args = ("run", "digits", "--budget", "smoke", "--no-figures", "--models", "bigan", "--set", "train.steps=12")
    assert cli(*args, "--out", "a")[0] == 0
    assert cli(*args, "--set", "eval.track_every=0", "--out", "b")[0] == 0
    assert _rows("a/bigan/seed0/losses.csv") == _rows("b/bigan/seed0/losses.csv")
    assert not Path("b/bigan/seed0/track.csv").exists()


def test_bad_truncation_thresholds_are_refused(cli):
    code, _, err = cli("run", "digits", "--budget", "smoke", "--set", "eval.truncation=[1.0,-2]", "--out", "r")
    assert code == 2 and "eval.truncation" in err and not Path("r").exists()
