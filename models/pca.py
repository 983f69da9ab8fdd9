"""Reference row: probabilistic PCA (Tipping & Bishop 1999) with z_dim components, the linear
model a learned bidirectional GAN has to beat on reconstruction, generation and probe alike.

* Fit in closed form from the training batches the harness hands it: each step adds the
  batch's sums of x and x x^T (float64) to running totals; the fit is the eigendecomposition
  of the resulting covariance, so after one epoch of the budget it is the training split's
  PCA. No gradient, no optimiser, no discriminator (params_d = 0, d_steps_per_step = 0).
* With S = U diag(lambda) U^T, the top z_dim eigenpairs (U_k, lambda_k) and mean mu:
  encode(x) = lambda_k^(-1/2) U_k^T (x - mu) (the whitened projection: N(0, I)-distributed
  codes on the training data, the prior), decode(z) = mu + U_k lambda_k^(1/2) z (its inverse
  map), so G(E(x)) is the PCA reconstruction and decode(z ~ N(0, I)) samples a Gaussian whose
  covariance in the principal subspace is PPCA's marginal covariance there (W W^T + sigma^2 I
  with W = U_k (lambda_k - sigma^2)^(1/2)). PPCA's isotropic noise sigma^2 (the mean discarded
  eigenvalue, kept as a buffer) is not added to samples: it would only add pixel noise.
* E and G are a Linear each (weights set by the fit, requires_grad False); their parameters
  count as params_e and params_g (D * z_dim + bias each).
* Under data parallelism each process sees its own rows; the totals are summed over the
  processes at every step, so every process fits the global batch's statistics.

The refit is lazy: a step only adds to the totals, and the first encode/decode after it
recomputes the eigendecomposition (once for evaluation, once per tracking point).
"""
import math

import torch
import torch.distributed as dist
from torch import nn

from models.errors import ModelConfigError
from models.base import BidirectionalGAN
from models.registry import register


@register("pca")
class PCA(BidirectionalGAN):
    prior = "normal"
    networks = ("G", "E")  # no discriminator: params_d = 0
    batches_per_step = 1
    d_steps_per_step = 0

    def __init__(self, *, data_shape, z_dim, width=None, total_steps=None, arch="shared"):
        super().__init__(data_shape=data_shape, z_dim=z_dim)
        dim = math.prod(self.data_shape)
        if z_dim > dim:
            raise ModelConfigError(f"pca: z_dim {z_dim} exceeds the data dimension {dim}; use arch.z_dim <= {dim}.")
        self.E = nn.Linear(dim, z_dim).requires_grad_(False)
        self.G = nn.Linear(z_dim, dim).requires_grad_(False)
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("sum_x", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("sum_xx", torch.zeros(dim, dim, dtype=torch.float64))
        self.register_buffer("fitted_count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("sigma2", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def train_step(self, batch, step):
        with torch.autocast(batch.device.type, enabled=False):
            x = batch.reshape(len(batch), -1).double()
            stats = [torch.tensor(float(len(x)), dtype=torch.float64, device=x.device), x.sum(0), x.T @ x]
            if self.shard[1] > 1 and dist.is_initialized():
                for t in stats:
                    dist.all_reduce(t)
            for total, t in zip((self.count, self.sum_x, self.sum_xx), stats):
                total += t
        mu = self.sum_x / self.count
        var = (torch.diagonal(self.sum_xx) / self.count - mu.pow(2)).mean()
        return {"mean_pixel_var": var.float()}  # total variance per dimension, a sanity trace

    @torch.no_grad()
    def fit(self):
        """Eigendecomposition of the accumulated covariance into E, G and sigma^2 (when stale)."""
        if self.count == 0 or self.fitted_count == self.count:
            return
        n = self.count
        mu = self.sum_x / n
        cov = (self.sum_xx - n * torch.outer(mu, mu)) / (n - 1)
        lam, u = torch.linalg.eigh(cov)  # ascending
        lam, u = lam.flip(0).clamp(min=1e-12), u.flip(1)
        k = self.z_dim
        lam_k, u_k = lam[:k], u[:, :k]
        enc = (u_k / lam_k.sqrt()).T  # (k, D)
        self.E.weight.copy_(enc)
        self.E.bias.copy_(-enc @ mu)
        self.G.weight.copy_(u_k * lam_k.sqrt())
        self.G.bias.copy_(mu)
        self.sigma2.fill_(lam[k:].mean() if len(lam) > k else 0.0)
        self.fitted_count.copy_(n)

    def encode(self, x):
        self.fit()
        return self.E(x.reshape(len(x), -1))

    def decode(self, z):
        self.fit()
        return self.G(z).reshape(len(z), *self.data_shape)
