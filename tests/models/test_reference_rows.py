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
    model.fit()  # lazy otherwise: at the first encode or decode
    return model


def test_pca_is_the_maximum_likelihood_ppca_of_scikit_learn():
    kw = {"data_shape": (1, 8, 8)}
    x = batch(kw, 400, seed=1) * torch.linspace(0.1, 1, 64).view(1, 1, 8, 8)  # unequal pixel variances
    model = _fitted_pca(x, z_dim=6)
    flat = x.reshape(len(x), -1).double().numpy()
    sk = SkPCA(n_components=6).fit(flat)
    np.testing.assert_allclose(model.sigma2.item(), sk.noise_variance_, rtol=1e-6)  # mean discarded eigenvalue
    w, mu = model.G.weight.double().numpy(), model.G.bias.double().numpy()
    np.testing.assert_allclose(mu, sk.mean_, atol=1e-6)
    # W = U_q (Lambda_q - sigma^2 I)^(1/2): the model covariance W W^T + sigma^2 I is scikit-learn's
    np.testing.assert_allclose(w @ w.T + model.sigma2.item() * np.eye(64), sk.get_covariance(), atol=1e-6)
    np.testing.assert_allclose(w.T @ w, np.diag(sk.explained_variance_ - sk.noise_variance_), atol=1e-6)  # R = I
    with torch.no_grad():
        rec = model.decode(model.encode(x)).reshape(len(x), -1).double().numpy()
    # G(E(x)) shrinks each principal coordinate by (lambda - sigma^2) / lambda toward the mean
    shrink = (sk.explained_variance_ - sk.noise_variance_) / sk.explained_variance_
    expected = sk.mean_ + ((flat - sk.mean_) @ sk.components_.T * shrink) @ sk.components_
    np.testing.assert_allclose(rec, expected, atol=1e-5)
    assert model.param_counts() == {"e": 64 * 6 + 6, "g": 6 * 64 + 64, "d": 0}


def test_pca_recovers_a_low_rank_plus_noise_covariance_and_encodes_the_posterior_mean():
    g = torch.Generator().manual_seed(0)
    d, q, sigma = 16, 3, 0.1
    w_true = torch.randn(d, q, generator=g, dtype=torch.float64) * 0.5
    mu_true = torch.randn(d, generator=g, dtype=torch.float64) * 0.1
    z = torch.randn(20000, q, generator=g, dtype=torch.float64)
    x = (z @ w_true.T + mu_true + sigma * torch.randn(20000, d, generator=g, dtype=torch.float64)).float()
    model = _fitted_pca(x.reshape(-1, 1, 4, 4), z_dim=q, batch_size=500)
    s2, w, mu = model.sigma2.item(), model.G.weight.double(), model.G.bias.double()
    assert abs(s2 - sigma ** 2) < 0.05 * sigma ** 2
    c_true = w_true @ w_true.T + sigma ** 2 * torch.eye(d, dtype=torch.float64)
    c_fit = w @ w.T + s2 * torch.eye(d, dtype=torch.float64)
    assert (c_fit - c_true).abs().max() < 0.05 * c_true.abs().max()
    # decode is W z + mu; encode is E[z | x] = M^-1 W^T (x - mu), M = W^T W + sigma^2 I, which
    # by the Woodbury identity is also W^T C^-1 (x - mu) with C = W W^T + sigma^2 I
    with torch.no_grad():
        codes, probe = model.encode(x[:100].reshape(-1, 1, 4, 4)).double(), torch.randn(5, q, generator=g)
        decoded = model.decode(probe).reshape(5, d).double()
    centred = x[:100].double() - mu
    np.testing.assert_allclose(decoded.numpy(), (probe.double() @ w.T + mu).numpy(), atol=1e-5)
    m = w.T @ w + s2 * torch.eye(q, dtype=torch.float64)
    np.testing.assert_allclose(codes.numpy(), torch.linalg.solve(m, w.T @ centred.T).T.numpy(), atol=1e-5)
    np.testing.assert_allclose(codes.numpy(), (w.T @ torch.linalg.solve(c_fit, centred.T)).T.numpy(), atol=1e-5)


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
