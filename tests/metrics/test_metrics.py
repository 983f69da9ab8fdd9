"""The metric formulas against closed forms, hand-built cases and independent implementations."""
import itertools
import math

import numpy as np
import pytest
import scipy.linalg
import torch

import metrics
from metrics import frechet


# --- Fréchet distance ----------------------------------------------------------------------

def test_frechet_closed_form_on_diagonal_gaussians():
    f64 = dict(dtype=torch.float64)
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0], **f64), torch.tensor([1.0, 1.0, 0.5], **f64)
    v1, v2 = torch.tensor([1.0, 4.0, 0.25], **f64), torch.tensor([2.0, 1.0, 0.25], **f64)
    by_hand = float(((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * (v1 * v2).sqrt()).sum())
    assert metrics.frechet_from_stats(mu1, torch.diag(v1), mu2, torch.diag(v2)) == pytest.approx(by_hand, rel=1e-12)
    # From samples: the estimate converges on the same value.
    g = torch.Generator().manual_seed(0)
    a = mu1 + v1.sqrt() * torch.randn(200_000, 3, generator=g, dtype=torch.float64)
    b = mu2 + v2.sqrt() * torch.randn(200_000, 3, generator=g, dtype=torch.float64)
    assert metrics.frechet_distance(a, b) == pytest.approx(by_hand, abs=0.03)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_frechet_matches_scipy_sqrtm_on_full_covariances():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(400, 16)), rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16)) + 0.3
    mu1, s1 = a.mean(0), np.cov(a, rowvar=False)
    mu2, s2 = b.mean(0), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    ref = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    mu, sigma = metrics.feature_stats(torch.from_numpy(a))
    np.testing.assert_allclose(mu.numpy(), mu1, rtol=1e-12)
    np.testing.assert_allclose(sigma.numpy(), s1, rtol=1e-10, atol=1e-12)
    assert metrics.frechet_distance(torch.from_numpy(a), torch.from_numpy(b)) == pytest.approx(ref, rel=1e-8)


def test_feature_stats_chunks_agree_with_one_pass(monkeypatch):
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    whole = metrics.feature_stats(x)
    monkeypatch.setattr(frechet, "_CHUNK", 7)
    for u, v in zip(whole, metrics.feature_stats(x.float())):
        torch.testing.assert_close(u, v, rtol=1e-6, atol=1e-7)


# --- Inception Score -----------------------------------------------------------------------

def test_inception_score_known_values():
    # Near-one-hot logits, 100 of each class: as one split the score is the 10 classes; each of
    # 10 shuffled splits holds about 10 of each, so it scores a little under 10. Identical rows
    # score exactly 1.
    sure = torch.eye(10)[torch.arange(1000) % 10] * 50
    assert metrics.inception_score(sure, splits=1) == pytest.approx((10.0, 0.0))
    mean, std = metrics.inception_score(sure, splits=10)
    assert 9.0 < mean < 10.0 and 0 < std < 0.5
    same = torch.tensor([[0.2, 0.3, 0.5]]).log().repeat(60, 1)
    assert metrics.inception_score(same, splits=3)[0] == pytest.approx(1.0)


def test_frechet_matches_torch_fidelity():
    """Our chunked float64 statistics and trace term agree with torch-fidelity's formulas
    (fid_features_to_statistics, fid_statistics_to_metric) on the same features."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    g = torch.Generator().manual_seed(5)
    a = torch.randn(300, 12, generator=g, dtype=torch.float64)
    b = torch.randn(250, 12, generator=g, dtype=torch.float64) * 1.3 + 0.4
    ref = fid_statistics_to_metric(fid_features_to_statistics(a), fid_features_to_statistics(b), verbose=False)
    assert metrics.frechet_distance(a, b) == pytest.approx(ref["frechet_inception_distance"], rel=1e-9)


def test_inception_score_matches_torch_fidelity():
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = torch.randn(200, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    ref = isc_features_to_metric(logits, splits=5, shuffle=True, rng_seed=2020)
    mean, std = metrics.inception_score(logits, splits=5)  # our wrapper passes its shuffle and seed
    assert mean == pytest.approx(ref["inception_score_mean"], rel=1e-10)
    assert std == pytest.approx(ref["inception_score_std"], rel=1e-8)


# --- KID -------------------------------------------------------------------------------------

def _mmd2_by_loops(x, y):
    k = lambda a, b: (float(np.dot(a, b)) / len(a) + 1) ** 3
    m = len(x)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return xx / (m * (m - 1)) + yy / (m * (m - 1)) - 2 * xy / (m * m)


def test_kid_matches_explicit_formula_and_clips_subset_size():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 3)) + 0.5
    # subset_size >= N: clipped to N, every subset is the whole set, so std is 0.
    mean, std = metrics.kernel_distance(torch.from_numpy(x), torch.from_numpy(y), subsets=3, subset_size=1000)
    assert mean == pytest.approx(_mmd2_by_loops(x, y), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_matches_torch_fidelity_subsets():
    from torch_fidelity.metric_kid import kid_features_to_metric

    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(80, 5, generator=g, dtype=torch.float64), torch.randn(60, 5, generator=g, dtype=torch.float64)
    ref = kid_features_to_metric(a, b, kid_subsets=7, kid_subset_size=20, rng_seed=11, verbose=False)
    # The GPU path (our torch code; run here on CPU tensors) draws the same subsets and agrees.
    mean, std = frechet._kid_torch(a, b, 7, 20, 3, None, 1, 11)
    assert mean == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-9)
    assert std == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-9)
    kid = metrics.kernel_distance(a.float(), b.float(), subsets=7, subset_size=20, seed=11)
    assert kid == pytest.approx((mean, std))


# --- linear probe ----------------------------------------------------------------------------

def _blobs(n, d=10, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=torch.Generator().manual_seed(99)) * 1.2
    y = torch.randint(k, (n,), generator=g)
    return centres[y] + torch.randn(n, d, generator=g) * 1.5, y


def _attributes(n, d=12, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d, k, generator=torch.Generator().manual_seed(98))
    x = torch.randn(n, d, generator=g)
    bias = torch.linspace(-1.5, 1.0, k)  # imbalanced attributes
    y = ((x @ w / 2 + bias + torch.randn(n, k, generator=g)) > 0).long()
    return x, y


@pytest.mark.parametrize("make", [_blobs, _attributes])
def test_probe_torch_backend_agrees_with_sklearn(make):
    xtr, ytr = make(1500, seed=0)
    xte, yte = make(1000, seed=1)
    sk = metrics.linear_probe(xtr, ytr, xte, yte)
    th = metrics.linear_probe(xtr, ytr, xte, yte, backend="torch")
    assert sk["backend"] == "sklearn" and th["backend"] == "torch"
    assert abs(sk["accuracy"] - th["accuracy"]) <= 0.005
    assert abs(sk["balanced_accuracy"] - th["balanced_accuracy"]) <= 0.005
    assert sk["majority_accuracy"] == th["majority_accuracy"] < sk["accuracy"]
    assert 0.6 < sk["accuracy"] < 0.99  # neither trivial nor hopeless: the comparison means something
    # Same fixed C: both fits land on the same optimum, nearly prediction for prediction.
    for c in (1e-3, 1.0):
        a = metrics.linear_probe(xtr, ytr, xte, yte, C=c)
        b = metrics.linear_probe(xtr, ytr, xte, yte, C=c, backend="torch")
        assert abs(a["accuracy"] - b["accuracy"]) <= 0.005


def test_probe_back_end_by_device_and_label_shape():
    """torch on CUDA for multi-label y only (where scikit-learn fits one model per task); a
    multi-class y takes scikit-learn on every device, where it is the faster solver."""
    from metrics.probe import default_backend
    one, many = np.zeros(8, dtype=int), np.zeros((8, 3), dtype=int)
    assert default_backend("cuda", many) == "torch" and default_backend(torch.device("cuda:1"), many) == "torch"
    assert default_backend("cuda", one) == "sklearn"
    assert {default_backend(d, y) for d in ("cpu", None) for y in (one, many)} == {"sklearn"}
    xtr, xte = np.random.default_rng(0).normal(size=(2, 40, 3))
    assert metrics.linear_probe(xtr, np.arange(40) % 2, xte, np.arange(40) % 2, device="cuda", Cs=(1.0,))[
        "backend"] == "sklearn"  # never touches the (absent) GPU


@pytest.mark.parametrize("make", [_blobs, _attributes])
def test_probe_torch_backend_fits_inside_the_evaluations_inference_mode(make):
    # The evaluation runs under torch.inference_mode, and on CUDA the probe takes the torch back
    # end: its L-BFGS fit needs gradients there, from inference-mode features too.
    xtr, ytr = make(600, seed=0)
    xte, yte = make(300, seed=1)
    outside = metrics.linear_probe(xtr, ytr, xte, yte, backend="torch")
    with torch.inference_mode():
        inside = metrics.linear_probe(torch.as_tensor(xtr), ytr, torch.as_tensor(xte), yte, backend="torch")
        few = (metrics.label_efficiency(torch.as_tensor(xtr), ytr, torch.as_tensor(xte), yte, [10], draws=2,
                                        seed=0, backend="torch") if ytr.ndim == 1 else None)  # classes only
    assert inside["accuracy"] == pytest.approx(outside["accuracy"]) and inside["C"] == outside["C"]
    assert few is None or 0 < few[10]["accuracy"] <= 1


def test_probe_selects_c_on_validation_slice_only():
    xtr, ytr = _blobs(800, seed=0)
    xte, yte = _blobs(300, seed=1)
    res = metrics.linear_probe(xtr, ytr, xte, yte, Cs=(1e-5, 1e-2, 1.0))
    assert set(res["val_accuracy"]) == {1e-5, 1e-2, 1.0}
    best = max(res["val_accuracy"].values())
    assert res["C"] == min(c for c, a in res["val_accuracy"].items() if a == best)
    assert res["val_accuracy"][1e-5] < best  # over-regularised: visibly worse on the slice
    scrambled = metrics.linear_probe(xtr, ytr, xte, torch.zeros_like(yte), Cs=(1e-5, 1e-2, 1.0))
    assert scrambled["C"] == res["C"] and scrambled["val_accuracy"] == res["val_accuracy"]
    fixed = metrics.linear_probe(xtr, ytr, xte, yte, C=0.5)  # the old call style still works
    assert fixed["C"] == 0.5 and fixed["val_accuracy"] == {}
    explicit = metrics.linear_probe(xtr, ytr, xte, yte, Cs=(1e-5, 1.0), val=_blobs(200, seed=2))
    assert explicit["C"] == 1.0


def test_probe_multilabel_reports_means_and_handles_constant_task():
    xtr, ytr = _attributes(600, seed=0)
    xte, yte = _attributes(300, seed=1)
    ytr[:, 0], yte[:, 0] = 1, 1  # a constant attribute: predicted as the constant
    for backend in ("sklearn", "torch"):
        res = metrics.linear_probe(xtr, ytr, xte, yte, backend=backend, Cs=(0.01, 1.0))
        majority = (ytr.float().mean(0) > 0.5).long()  # the more frequent value (ties: 0)
        maj = float((yte == majority).float().mean(0).mean())
        assert res["majority_accuracy"] == pytest.approx(maj)
        assert res["accuracy"] > res["majority_accuracy"]
        assert 0.5 < res["balanced_accuracy"] <= 1.0


def test_probe_balanced_accuracy_by_hand():
    from metrics.probe import _balanced

    y = np.array([0, 0, 0, 1])
    assert _balanced(y, np.array([0, 0, 0, 0])) == pytest.approx(0.5)
    assert _balanced(y, np.array([0, 0, 1, 1])) == pytest.approx((2 / 3 + 1) / 2)


# --- kNN -------------------------------------------------------------------------------------

def test_knn_hand_made():
    # Training points at angles 0, 10, 20 deg (class 0) and 90, 100 deg (class 1); cosine ignores norms.
    ang = torch.tensor([0.0, 10.0, 20.0, 90.0, 100.0]) * math.pi / 180
    xtr = torch.stack([ang.cos(), ang.sin()], 1) * torch.tensor([[1.0], [3.0], [0.5], [2.0], [1.0]])
    ytr = torch.tensor([0, 0, 0, 1, 1])
    test_ang = torch.tensor([5.0, 95.0, 58.0]) * math.pi / 180
    xte, yte = torch.stack([test_ang.cos(), test_ang.sin()], 1), torch.tensor([0, 1, 1])
    # Neighbours of 58 deg by similarity: 90 (1), 20 (0), 100 (1), 10 (0), 0 (0).
    assert metrics.knn_accuracy(xtr, ytr, xte, yte, k=1) == pytest.approx(1.0)
    assert metrics.knn_accuracy(xtr, ytr, xte, yte, k=3) == pytest.approx(1.0)  # 2 votes to 1
    # k=4: 58 and 95 deg both see a 2-2 tie; it goes to the nearest neighbour's class (1), not to
    # the smaller class index.
    assert metrics.knn_accuracy(xtr, ytr, xte, yte, k=4) == pytest.approx(1.0)
    # k=5 (all points): class 0 wins 3-2 everywhere.
    assert metrics.knn_accuracy(xtr, ytr, xte, yte, k=5) == pytest.approx(1 / 3)
    assert metrics.knn_accuracy(xtr, ytr, xte, yte, k=50) == pytest.approx(1 / 3)  # k clipped to N
    # Multi-label: attribute 0 = class, attribute 1 = always 1 -> perfect on attribute 1.
    y2 = torch.stack([ytr, torch.ones_like(ytr)], 1)
    assert metrics.knn_accuracy(xtr, y2, xte, torch.tensor([[0, 1], [1, 1], [0, 1]]), k=1) == pytest.approx(
        (2 / 3 + 1) / 2)
    assert metrics.knn_accuracy(xtr, y2, xte, torch.tensor([[0, 1], [1, 1], [1, 1]]), k=4) == pytest.approx(1.0)


def test_knn_chunking_does_not_change_the_answer(monkeypatch):
    from metrics import knn

    xtr, ytr = _blobs(300, seed=0)
    xte, yte = _blobs(100, seed=1)
    whole = metrics.knn_accuracy(xtr, ytr, xte, yte, k=7)
    monkeypatch.setattr(knn, "_MAX_ELEMENTS", 1000)  # chunks of 3 test points
    assert metrics.knn_accuracy(xtr, ytr, xte, yte, k=7) == whole > 0.5


def test_knn_euclidean_keeps_the_radius_that_cosine_discards():
    def circles(n, seed):  # class 0 on the unit circle, class 1 on the circle of radius 3
        g = torch.Generator().manual_seed(seed)
        angle = torch.rand(n, generator=g) * 2 * math.pi
        y = torch.arange(n) % 2
        r = 1 + 2 * y.float() + 0.05 * torch.randn(n, generator=g)
        return torch.stack([r * angle.cos(), r * angle.sin()], 1), y

    (xtr, ytr), (xte, yte) = circles(400, 0), circles(200, 1)
    assert metrics.knn_accuracy(xtr, ytr, xte, yte, k=20, metric="euclidean") == 1.0
    assert 0.3 < metrics.knn_accuracy(xtr, ytr, xte, yte, k=20) < 0.7  # cosine: only the angle, so chance
    with pytest.raises(ValueError, match="metric"):
        metrics.knn_accuracy(xtr, ytr, xte, yte, metric="manhattan")


# --- mode coverage -------------------------------------------------------------------------

def test_mode_coverage_hand_placed():
    grid = torch.tensor([[i, j] for i in range(-2, 3) for j in range(-2, 3)], dtype=torch.float32) * 2.0
    on_seven = grid[:7].repeat(100, 1)  # 700 samples exactly on 7 of 25 centres
    res = metrics.mode_coverage(on_seven, grid, 0.05)
    assert res["modes_3sigma"] == res["modes_nearest"] == 7 and res["high_quality"] == 1.0
    assert res["kl_modes"] == pytest.approx(math.log(25 / 7)) and res["n_3sigma"] == 700
    far = torch.full((50, 2), 1.0)  # halfway between centres: nearest is 1.41 away >> 3 * 0.05
    res = metrics.mode_coverage(torch.cat([on_seven, far]), grid, 0.05)
    assert res["modes_3sigma"] == 7 and res["high_quality"] == pytest.approx(700 / 750)
    assert res["modes_nearest"] == 8  # ALI's rule: a far-off sample still keeps its nearest mode alive
    assert metrics.mode_coverage(far, grid, 0.05)["kl_modes"] is None
    # VEEGAN/PacGAN count on the first 2,500 samples: a mode reached only later is not covered
    late = torch.cat([grid[:1].repeat(2500, 1), grid[1:2]])
    res = metrics.mode_coverage(late, grid, 0.05)
    assert res["modes_3sigma"] == 1 and res["modes_nearest"] == 2 and res["n_3sigma"] == 2500
    # Uniform over all modes: KL 0. min_count raises the bar.
    assert metrics.mode_coverage(grid.repeat(4, 1), grid, 0.05)["kl_modes"] == pytest.approx(0.0)
    sparse = torch.cat([grid[:1].repeat(99, 1), grid[1:2]])
    assert metrics.mode_coverage(sparse, grid, 0.05, min_count=2)["modes_3sigma"] == 1
    assert metrics.mode_coverage(sparse, grid, 0.05)["modes_3sigma"] == 2


# --- reconstruction ----------------------------------------------------------------------------

def test_reconstruction_helpers():
    z = torch.zeros(4, 3)
    assert metrics.latent_cycle_mse(z, z + 2) == pytest.approx(4.0)
    assert metrics.reconstruction_mse(z, z + 0.5) == pytest.approx(0.25)
    assert metrics.label_agreement(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 4])) == 0.75
    a = torch.tensor([[1, 0], [1, 1], [0, 0], [0, 1]])
    b = torch.tensor([[1, 1], [1, 1], [0, 1], [1, 1]])
    assert metrics.label_agreement(a, b) == pytest.approx((3 / 4 + 2 / 4) / 2)
    with pytest.raises(ValueError):
        metrics.latent_cycle_mse(z, torch.zeros(4, 2))


def test_pooled_probe_features_normalise_with_train_statistics_then_crelu():
    """BigBiGAN's probe recipe on a hand-made matrix: BN with the train statistics, then CReLU.
    Post-ReLU features (all >= 0) keep a non-empty negative half only in this order."""
    train = torch.tensor([[0.0, 2.0], [2.0, 2.0], [4.0, 2.0]])  # column 0: mean 2, std sqrt(8/3); column 1 constant
    test = torch.tensor([[1.0, 5.0]])
    f_tr, f_te = metrics.bn_crelu(train, test)
    s = math.sqrt(8 / 3)
    assert torch.allclose(f_tr, torch.tensor([[0.0, 0.0, 2 / s, 0.0], [0.0, 0.0, 0.0, 0.0], [2 / s, 0.0, 0.0, 0.0]],
                                             dtype=torch.float64))
    # test rows use train's statistics; a constant train column keeps scale 1 (3 above its mean)
    assert torch.allclose(f_te, torch.tensor([[0.0, 3.0, 1 / s, 0.0]], dtype=torch.float64))
    assert (f_tr[:, 2:] > 0).any()  # the negative half carries information


# --- precision, recall, density, coverage ------------------------------------------------------

def _two_samples(seed=0):
    """Fixed real and generated features that overlap in part: the generated ones narrower and shifted."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(400, 8, generator=g) * 0.6 + 0.4, torch.randn(500, 8, generator=g)


@pytest.mark.parametrize("block", [None, 64])
def test_precision_recall_are_torch_fidelitys(monkeypatch, block):
    from torch_fidelity.metric_prc import prc_features_to_metric

    from metrics import prdc

    if block:  # the blocked path compares the same distances as torch-fidelity's full-matrix one
        monkeypatch.setattr(prdc, "_PR_BLOCK", block)
    fake, real = _two_samples()
    ref = prc_features_to_metric(fake, real, verbose=False)  # its defaults: k = 3, generated first
    assert metrics.precision_recall(fake, real) == (ref["precision"], ref["recall"])
    assert ref["precision"] != ref["recall"]  # so a swapped pair of arguments would show


def test_precision_recall_tell_few_modes_from_spread():
    """Samples on one small patch of the data are all realistic (precision 1) but reach little
    of it (recall and coverage near 0); the reverse for samples spread wider than the data."""
    g = torch.Generator().manual_seed(1)
    real = torch.randn(500, 2, generator=g)
    patch = real[:60] * 0.05 + torch.tensor([0.5, 0.5])
    precision, recall = metrics.precision_recall(patch, real)
    assert precision == 1.0 and recall < 0.1
    assert metrics.density_coverage(patch, real)[1] < 0.1
    precision, recall = metrics.precision_recall(torch.randn(500, 2, generator=g) * 4, real)
    assert precision < 0.4 and recall > 0.9


@pytest.mark.parametrize("block", [None, 64])
def test_density_coverage_equal_prdc(monkeypatch, capsys, block):
    from prdc import compute_prdc

    from metrics import prdc

    if block:
        monkeypatch.setattr(prdc, "_BLOCK", block)
    fake, real = _two_samples(2)
    ref = compute_prdc(real.numpy(), fake.numpy(), nearest_k=5)
    density, coverage = metrics.density_coverage(fake, real)
    assert density == pytest.approx(ref["density"], rel=1e-12) and coverage == pytest.approx(ref["coverage"], rel=1e-12)
    assert 0 < coverage < 1 and density != coverage


def test_density_coverage_by_hand():
    # Real points 0, 1, ..., 9 on a line: with k = 1 every ball has radius 1. Two generated points
    # at 0.5 each lie in the balls of 0 and 1: density (2 + 2) / (1 * 2) = 2, and those two of ten
    # real points are covered.
    real = torch.arange(10.0).unsqueeze(1)
    assert metrics.density_coverage(torch.tensor([[0.5], [0.5]]), real, k=1) == (2.0, 0.2)
    # with k = 2, the second nearest other point: 2 away at the ends, 1 between
    torch.testing.assert_close(metrics.knn_radii(real, 2), torch.tensor([2.0, 1, 1, 1, 1, 1, 1, 1, 1, 2],
                                                                        dtype=torch.float64))
    with pytest.raises(ValueError, match="more than 5 samples"):
        metrics.density_coverage(real[:5], real)


# --- label efficiency --------------------------------------------------------------------------

def test_label_draws_are_fixed_stratified_and_nested():
    y = torch.tensor([0] * 5 + [1] * 7 + [2] * 9)[torch.randperm(21, generator=torch.Generator().manual_seed(0))]
    twos = metrics.label_draws(y, 2, draws=4, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(twos, metrics.label_draws(y, 2, draws=4, seed=0)))
    for idx in twos:
        assert np.bincount(y.numpy()[idx]).tolist() == [2, 2, 2]
    assert len({tuple(idx) for idx in twos}) > 1  # the draws differ from each other
    for one, two in zip(metrics.label_draws(y, 1, draws=4, seed=0), twos):
        assert set(one) < set(two)  # a curve over n adds labels to the same items
    assert any(not np.array_equal(a, b) for a, b in zip(twos, metrics.label_draws(y, 2, draws=4, seed=1)))
    with pytest.raises(ValueError, match="smallest class count"):
        metrics.label_draws(y, 6, draws=1)


def test_label_efficiency_mean_and_sd_over_the_draws():
    g = torch.Generator().manual_seed(0)
    y_tr, y_te = torch.arange(300) % 3, torch.arange(90) % 3
    centres = torch.tensor([[3.0, 0], [0, 3.0], [-3.0, -3.0]])
    x_tr, x_te = centres[y_tr] + torch.randn(300, 2, generator=g), centres[y_te] + torch.randn(90, 2, generator=g)
    out = metrics.label_efficiency(x_tr, y_tr, x_te, y_te, [1, 20], draws=4, seed=0)
    assert set(out) == {1, 20}
    for r in out.values():
        assert r["accuracy"] == pytest.approx(np.mean(r["accuracies"])) and len(r["accuracies"]) == 4
        assert r["sd"] == pytest.approx(np.std(r["accuracies"], ddof=1))
        assert r["correct"].shape == (90,) and r["correct"].mean() == pytest.approx(r["accuracy"])
    assert 0.9 < out[20]["accuracy"] <= 1 and out[1]["sd"] > 0  # one label per class varies by the draw
    again = metrics.label_efficiency(x_tr, y_tr, x_te, y_te, [1], draws=4, seed=0)
    assert again[1]["accuracies"] == out[1]["accuracies"]
    torch_path = metrics.label_efficiency(x_tr, y_tr, x_te, y_te, [20], draws=4, seed=0, backend="torch")
    assert torch_path[20]["accuracy"] == pytest.approx(out[20]["accuracy"], abs=0.03)
