"""WGAN BiGAN: a BiGAN (Donahue, Kraehenbuehl & Darrell, "Adversarial Feature Learning", ICLR
2017) whose discriminator is a Wasserstein critic on (x, z) pairs, with the gradient penalty of
Gulrajani et al. ("Improved Training of Wasserstein GANs", NeurIPS 2017) on joint interpolates,
in two variants:

* `bigan-wgan`: the critic with its gradient penalty, weight `gp_weight` (default 10);
* `bigan-wgan-nogp`: the same critic with no Lipschitz constraint at all (`gp_weight` fixed at 0):
  no penalty and no weight clipping, so the critic's objective is unbounded. The control for the
  BiGAN-QP claim that GAN-QP needs no Lipschitz constraint: a WGAN-family critic does need one.

Faithful to Donahue et al.:

* one joint critic D(x, z) scores encoder pairs (x, E(x)) against generator pairs (G(z), z);
  E and G are trained together, with one optimiser, on the inverse of the critic's objective;
* E is deterministic; z enters D as a learned bias at every layer after the first (the shared
  `JointDiscriminator`, BiGAN's way of feeding z to D).

Faithful to Gulrajani et al. (Algorithm 1), read for a critic on pairs:

* critic loss mean D(G(z), z) − mean D(x, E(x)) + λ·mean (‖∇ D(x̂, ẑ)‖₂ − 1)², λ = 10, where
  (x̂, ẑ) = ε·(x, E(x)) + (1 − ε)·(G(z), z) with one ε ~ U[0, 1] per pair, the gradient taken
  with respect to x̂ and ẑ together (the critic's whole input) and its norm over both;
* E/G loss mean D(x, E(x)) − mean D(G(z), z) (the WGAN generator loss −mean D(G(z)), with the
  encoder's pairs as the other side, as BiGAN's minimax objective has them); the penalty is not
  in it;
* no normalisation in the critic (batch norm would make each pair's score, and so the penalised
  gradient, depend on the rest of the batch): `JointDiscriminator(norm=False)`;
* Adam lr 1e-4, β2 0.9; E(x) and G(z) are computed without gradient in the critic step.

Readings of our own:

* β1 0.5, not the paper's 0, and 2 critic steps per E/G step, not 5, each on a fresh real batch
  and fresh z (batches_per_step = 3): the settings of `examples/wgan_gp_bigan.py`, which match
  BiGAN-QP's 2 critic steps per G/E step, so the two families spend the same budget (`d_steps`).
* N(0, I) prior and a linear encoder head (BiGAN's is U(−1, 1) with 2·sigmoid − 1); the shared
  Generator, Encoder and JointDiscriminator at PyTorch's default initialisation. There is no
  published WGAN BiGAN network, so `arch: paper` builds the shared nets too.
* `gp_weight` 0 skips the penalty's computation entirely (no double backward) rather than
  multiplying it by 0; the loss log then has no `gp` column.
* The critic trains in fp32 on the fast path, as BiGAN-QP's does: its gradient is the difference
  of the real and fake pairs' gradients with no saturating link in between, and the penalty
  differentiates a gradient norm, both of which bf16 rounds to noise.
* The penalty's second D call runs eager under torch.compile: a compiled graph has no double
  backward (the penalty's gradient goes through D's input gradient).
* The 2 critic steps' losses are averaged for the loss log (`loss_d`, `gp`, `w_estimate`).
"""
import torch

from models.base import ADAM, NON_NEGATIVE, BidirectionalGAN, Range, adam, frozen, simultaneous_step
from models.blocks import Encoder, Generator, JointDiscriminator
from models.errors import ModelConfigError
from models.registry import register
from models.search import OPTIMISER_SPACE


def wasserstein_estimate(score_real, score_fake):
    """mean D(x, E(x)) − mean D(G(z), z): the critic's estimate of the Wasserstein distance
    between the encoder's and the generator's joint distributions."""
    return score_real.mean() - score_fake.mean()


def critic_loss(score_real, score_fake):
    """What the critic minimises before its penalty: the negated Wasserstein estimate."""
    return -wasserstein_estimate(score_real, score_fake)


def ge_loss(score_real, score_fake):
    """What E and G minimise together: the Wasserstein estimate, closed from both sides."""
    return wasserstein_estimate(score_real, score_fake)


def gradient_penalty(critic, x_real, z_real, x_fake, z_fake, eps):
    """mean (‖∇_(x̂, ẑ) D(x̂, ẑ)‖₂ − 1)² at (x̂, ẑ) = eps·(x_real, z_real) + (1 − eps)·(x_fake, z_fake),
    eps of shape (B,): one mixing weight per pair, shared by x and z. The graph is kept
    (create_graph) so the penalty's gradient reaches the critic's parameters."""
    eps_x = eps.view(-1, *[1] * (x_real.dim() - 1))
    x_hat = (eps_x * x_real + (1 - eps_x) * x_fake).detach().requires_grad_()
    z_hat = (eps[:, None] * z_real + (1 - eps[:, None]) * z_fake).detach().requires_grad_()
    grad_x, grad_z = torch.autograd.grad(critic(x_hat, z_hat).sum(), (x_hat, z_hat), create_graph=True)
    norm = (grad_x.flatten(1).pow(2).sum(1) + grad_z.pow(2).sum(1)).sqrt()
    return (norm - 1).pow(2).mean()


@register("bigan-wgan")
class BiGANWGAN(BidirectionalGAN):
    """BiGAN with a Wasserstein critic on (x, z), gradient penalty on joint interpolates (WGAN-GP)."""

    prior = "normal"
    batches_per_step = 3  # 2 critic batches + 1 E/G batch
    capturable = True  # the same kernels every step of a phase (benchmarks/training/capture.py)
    d_steps_per_step = 2
    fp32_networks = ("D",)  # see the module docstring
    option_ranges = {"lr": ADAM["lr"], "adam_beta1": ADAM["adam_beta1"], "adam_beta2": ADAM["adam_beta2"],
                     "gp_weight": NON_NEGATIVE}
    # The shared optimiser space only: gp_weight is the design choice a study ablates (the
    # -nogp variant), not a hyperparameter to tune away.
    search_space = dict(OPTIMISER_SPACE)

    def __init__(self, *, data_shape, z_dim, width, total_steps, arch="shared", lr=1e-4, adam_beta1=0.5,
                 adam_beta2=0.9, gp_weight=10.0):
        super().__init__(data_shape=data_shape, z_dim=z_dim)
        del total_steps  # no schedule
        name = getattr(self, "registry_name", type(self).__name__)
        if arch not in ("shared", "paper"):
            raise ModelConfigError(f"{name}: arch must be 'shared' or 'paper', got {arch!r}.")
        self.G = Generator(self.data_shape, z_dim, width)
        self.E = Encoder(self.data_shape, z_dim, width)  # linear head: the N(0, I) prior's support
        self.D = JointDiscriminator(self.data_shape, z_dim, width, norm=False)  # no BN under a gradient penalty
        self.gp_weight = float(gp_weight)
        betas = (adam_beta1, adam_beta2)
        self.optimizers = {"d": adam([self.D], lr, betas), "ge": adam([self.G, self.E], lr, betas)}

    def mixing_weights(self, n, device):
        """One ε ~ U[0, 1) per pair: this process's rows of the global draw, so that n processes
        draw what one would (as sample_latent and noise_like do)."""
        rank, world = self.shard
        return torch.rand(n * world, device=device)[rank * n:(rank + 1) * n]

    def critic_step(self, x):
        """One critic update on real batch `x`; returns (loss_d, penalty or None, Wasserstein estimate)."""
        with torch.no_grad():  # E's and G's outputs are fixed inputs of the critic's step
            z_real = self.E(x)
            z_fake = self.sample_latent(x.shape[0])
            x_fake = self.G(z_fake)
        score_real, score_fake = self.D(x, z_real), self.D(x_fake, z_fake)
        loss_d = critic_loss(score_real, score_fake)
        penalty = None
        if self.gp_weight > 0:
            eps = self.mixing_weights(x.shape[0], x.device)
            with torch.compiler.set_stance("force_eager"):  # no double backward through a compiled graph
                penalty = gradient_penalty(self.D, x, z_real, x_fake, z_fake, eps)
            loss_d = loss_d + self.gp_weight * penalty
        simultaneous_step((loss_d, self.optimizers["d"]))  # one backward, w.r.t. D only
        penalty = None if penalty is None else penalty.detach()
        return loss_d.detach(), penalty, wasserstein_estimate(score_real, score_fake).detach()

    def train_step(self, batch, step):
        n = batch.shape[0]
        if n % self.batches_per_step:
            raise ValueError(f"{type(self).__name__}.train_step needs {self.batches_per_step} batches "
                             f"concatenated on dim 0; got {n} rows")
        *critic_batches, x = batch.chunk(self.batches_per_step)
        steps = [self.critic_step(x_real) for x_real in critic_batches]
        # E and G: one update against the just-trained critic; D's gradients are left alone.
        z = self.sample_latent(x.shape[0])
        with frozen(self.D):  # no backward computes D's weight gradients here (models/base.py `frozen`)
            loss_ge = ge_loss(self.D(x, self.E(x)), self.D(self.G(z), z))
        simultaneous_step((loss_ge, self.optimizers["ge"]))
        out = {"loss_d": torch.stack([s[0] for s in steps]).mean(), "loss_ge": loss_ge.detach(),
               "w_estimate": torch.stack([s[2] for s in steps]).mean()}
        if self.gp_weight > 0:
            out["gp"] = torch.stack([s[1] for s in steps]).mean()
        return out


@register("bigan-wgan-nogp")
class BiGANWGANNoGP(BiGANWGAN):
    """BiGAN with a Wasserstein critic on (x, z) and no Lipschitz constraint (no penalty, no clipping)."""

    # gp_weight is the one thing that makes this variant: it takes 0 only (bigan-wgan takes others),
    # and is recorded in each run's config as 0. The search space is bigan-wgan's, without gp_weight.
    option_ranges = {**BiGANWGAN.option_ranges,
                     "gp_weight": Range("0 (the variant without a penalty; run bigan-wgan for gp_weight > 0)",
                                        lambda v: v == 0)}

    def __init__(self, *, data_shape, z_dim, width, total_steps, arch="shared", lr=1e-4, adam_beta1=0.5,
                 adam_beta2=0.9, gp_weight=0.0):
        super().__init__(data_shape=data_shape, z_dim=z_dim, width=width, total_steps=total_steps, arch=arch, lr=lr,
                         adam_beta1=adam_beta1, adam_beta2=adam_beta2, gp_weight=gp_weight)
