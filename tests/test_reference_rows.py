"""The two reference rows that bracket the learned models: PCA (the linear model to beat) and
random-init (the untrained floor)."""
import numpy as np
import torch
from sklearn.decomposition import PCA as SkPCA

import models
from tests.helpers import batch, snapshot


def _fitted_pca(x, z_dim, batch_size=50):
    model = models.build("pca", data_shape=tuple(x.shape[1:]), z_dim=z_dim, width=8, total_steps=1)
    for i in range(0, len(x), batch_size):  # one epoch in the harness's batches
        model.train_step(x[i:i + batch_size], i)
    return model


def test_pca_reconstructs_like_scikit_learn_and_whitens_the_codes():
    kw = {"data_shape": (1, 8, 8)}
    x = batch(kw, 400, seed=1) * torch.linspace(0.1, 1, 64).view(1, 1, 8, 8)  # unequal pixel variances
    model = _fitted_pca(x, z_dim=6)
    with torch.no_grad():
        z = model.encode(x)
        rec = model.decode(z)
    flat = x.reshape(len(x), -1).double().numpy()
    sk = SkPCA(n_components=6).fit(flat)
    expected = sk.inverse_transform(sk.transform(flat))
    np.testing.assert_allclose(rec.reshape(len(x), -1).double().numpy(), expected, atol=1e-5)
    # whitened: unit variance, uncorrelated codes on the training data (the N(0, I) prior)
    cov = np.cov(z.double().numpy(), rowvar=False)
    np.testing.assert_allclose(cov, np.eye(6), atol=1e-4)
    np.testing.assert_allclose(model.sigma2.item(), sk.noise_variance_, rtol=1e-6)  # PPCA's sigma^2
    assert model.param_counts() == {"e": 64 * 6 + 6, "g": 6 * 64 + 64, "d": 0}


def test_pca_samples_have_the_principal_covariance():
    kw = {"data_shape": (1, 4, 4)}
    x = batch(kw, 2000, seed=2) * torch.linspace(0.2, 1, 16).view(1, 1, 4, 4)
    model = _fitted_pca(x, z_dim=16)  # all components: the samples' covariance is the data's
    with torch.no_grad():
        samples = model.decode(model.sample_latent(20000, generator=torch.Generator().manual_seed(0)))
    got = np.cov(samples.reshape(len(samples), -1).double().numpy(), rowvar=False)
    want = np.cov(x.reshape(len(x), -1).double().numpy(), rowvar=False)
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()


def test_random_init_never_changes():
    kw = {"data_shape": (1, 16, 16), "z_dim": 8, "width": 8, "total_steps": 3}
    model = models.build("random-init", **kw)
    before = snapshot(model, buffers=True)
    for step in range(3):
        out = model.train_step(batch(kw, 16, seed=step), step)
        assert torch.isfinite(out["loss_rec"])
    after = snapshot(model, buffers=True)
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN statistics alike
    assert model.training  # the harness's mode is restored
