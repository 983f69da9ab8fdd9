"""Reference row: probabilistic PCA (Tipping & Bishop, "Probabilistic Principal Component
Analysis", JRSS B 1999) with z_dim latent dimensions, the linear model a learned bidirectional
GAN has to beat on reconstruction, generation and probe alike.

* Fit in closed form from the training batches the harness hands it: each step adds the
  batch's sums of x and x x^T (float64) to running totals; the fit is the eigendecomposition
  of the resulting covariance, so after one epoch of the budget it is the training split's
  maximum-likelihood PPCA. No gradient, no optimiser, no discriminator (params_d = 0,
  d_steps_per_step = 0).
* With S = U diag(lambda) U^T (eigenvalues descending), q = z_dim and mean mu, the maximum-
  likelihood solution (with the rotation R = I): sigma^2 = the mean of the discarded
  eigenvalues lambda_{q+1..D} (0 when q = D), W = U_q (Lambda_q - sigma^2 I)^(1/2).
* decode(z) = W z + mu, the generative model's mean (the isotropic noise sigma^2 is not added
  to samples, like every row's deterministic G), so decode(z ~ N(0, I)) has covariance
  W W^T = U_q (Lambda_q - sigma^2 I) U_q^T.
* encode(x) = E[z | x] = M^(-1) W^T (x - mu), M = W^T W + sigma^2 I, the posterior mean.
  With R = I, M = Lambda_q, so the code along axis i is (lambda_i - sigma^2)^(1/2) / lambda_i
  * u_i^T (x - mu). G(E(x)) is therefore not the orthogonal projection: it shrinks each
  principal coordinate toward the mean by (lambda_i - sigma^2) / lambda_i (the posterior
  mean's shrinkage, which Tipping & Bishop point out), and is the PCA reconstruction only
  when sigma^2 = 0.
* E and G are a Linear each (weights set by the fit, requires_grad False); their parameters
  count as params_e and params_g (D * z_dim + bias each). sigma^2 is kept as a buffer.
* Under data parallelism each process sees its own rows; the totals are summed over the
  processes at every step, so every process fits the global batch's statistics.
* Cost: the per-step x^T x is counted by the harness's FLOP counter; the eigendecomposition,
  which the counter does not see, is reported by `analytic_flops`, once per run.

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
    search_space = {}  # a reference fitted in closed form: nothing to tune
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
        q = self.z_dim
        lam_q, u_q = lam[:q], u[:, :q]
        sigma2 = lam[q:].mean() if len(lam) > q else lam.new_zeros(())
        scale = (lam_q - sigma2).clamp(min=0).sqrt()  # W = U_q diag(scale)
        # M = W^T W + sigma^2 I = diag(lam_q) (U_q has orthonormal columns), so the posterior
        # mean M^-1 W^T (x - mu) scales u_i^T (x - mu) by scale_i / lam_i
        enc = (u_q * (scale / lam_q)).T  # (q, D)
        self.E.weight.copy_(enc)
        self.E.bias.copy_(-enc @ mu)
        self.G.weight.copy_(u_q * scale)
        self.G.bias.copy_(mu)
        self.sigma2.copy_(sigma2)
        self.fitted_count.copy_(n)

    def analytic_flops(self):
        """The eigendecomposition of the D x D covariance, which FlopCounterMode does not count:
        9 D^3 FLOPs, Golub & Van Loan's count for a symmetric eigendecomposition with
        eigenvectors (Matrix Computations, section 8.3, the symmetric QR algorithm, Algorithm
        8.3.3: tridiagonalisation, then QR steps with the eigenvectors accumulated; about
        4 D^3 / 3 for the eigenvalues alone). torch.linalg.eigh calls LAPACK's syevd (divide and
        conquer), usually cheaper but of the same order; the textbook count keeps the figure
        independent of the backend. The covariance's x^T x is counted by the harness at every
        step; the fit's other products are O(D^2 + D z_dim), negligible beside D^3."""
        return {"eigendecomposition": 9 * self.E.in_features ** 3}

    def encode(self, x):
        self.fit()
        return self.E(x.reshape(len(x), -1))

    def decode(self, z):
        self.fit()
        return self.G(z).reshape(len(z), *self.data_shape)
