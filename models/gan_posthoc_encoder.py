"""Reference row: a plain GAN, then an encoder fit post hoc to invert its generator.

The baseline that Rubenstein, Li & Roblek ("An Empirical Study of Generative Models with
Encoders", arXiv:1812.07909) found about as good as BiGAN, and ALI's "post-hoc learned
inference" comparison: train a GAN without an encoder, then train E on (G(z), z) pairs.

* G is the shared `Generator`; D is the shared x-path (`Trunk`) with a linear head, no z.
* GAN phase: the standard non-saturating GAN with DCGAN's settings. D minimises
  BCE(D(x), 1) + BCE(D(G(z)), 0) (real and fake in separate D calls, as in the DCGAN example),
  then G minimises BCE(D(G(z)), 1) against the just-updated D, on the same z (alternating,
  one real batch per step). Adam lr 2e-4, betas (0.5, 0.999); N(0, I) prior; N(0, 0.02) init.
* Post-hoc phase: G and D are frozen; E (the shared `Encoder`, linear head) minimises
  mean((E(G(z)) - z)^2) on fresh z every step, with its own Adam (same settings).

Readings of our own:
* "After training" inside the harness's budget: the harness calls `train_step` total_steps
  times and then evaluates. The first total_steps - round(posthoc_fraction * total_steps)
  steps (default posthoc_fraction 0.2) are the GAN phase ("gan"), the rest the post-hoc phase
  ("posthoc"); `phase` chooses it from `step`, so a resumed run continues in the right phase,
  and the harness counts the FLOPs of each phase's step separately. E does not change during
  the GAN phase, G and D do not change during the post-hoc phase.
* In the post-hoc phase G runs in eval mode (BN running statistics, under no_grad): its
  weights and BN buffers stay fixed, and E learns to invert exactly the G that evaluation
  decodes with (the harness evaluates in eval mode). E runs in train mode (batch statistics).
* Budget accounting: D is updated only in the GAN phase, so `d_updates` reports
  min(g_steps, gan_steps). g_steps counts G updates in the GAN phase plus E updates in the
  post-hoc phase. The harness also draws a real batch in the post-hoc phase (images_seen
  counts the images drawn) that the model does not use.
* The encoder loss is the plain per-element MSE in z; Adam for E uses the GAN's settings.
* `arch: paper` on images: a reference row has no published network, so it builds the shared nets.
* `arch: paper` on 2-D points: the GAN baseline of ALI's mixture experiment
  (`experiments/gan_mixture.py`, models/mixture_blocks.py): G 4 x 400 with BN and ReLU, a maxout
  D on x without BN, and ALI's update: real and generated batches through D as one batch,
  d_loss = mean softplus(-D(x)) + mean softplus(D(G(z))), g_loss = mean softplus(D(x)) +
  mean softplus(-D(G(z))) (label-swapped; the first term carries no gradient to G),
  one simultaneous step (`ali_algorithm`). The post-hoc encoder is ALI's change-of-variables
  encoder ("the same architecture as ALI's encoder"), trained as above with its own noise;
  `encode` is E(x, eps=0). The toy2d-ali config sets the script's Adam (lr 1e-4, adam_beta1 0.8);
  `random_hparams` draws lr, adam_beta1 and init std per run as for ALI.
"""
import torch
import torch.nn.functional as F
from torch import nn

from models.errors import ModelConfigError

from models.base import ADAM, ADAM_BETAS_RENAMED, BidirectionalGAN, UNIT, adam, frozen, simultaneous_step
from models.blocks import Encoder, Generator, Trunk, init_normal
from models.mixture_blocks import COVEncoder, MaxoutDiscriminator, MixtureGenerator, draw_hparams
from models.registry import register


class XDiscriminator(nn.Module):
    """D(x) -> logit (B,): the shared x-trunk and a linear head (a plain GAN's D)."""

    def __init__(self, data_shape, width, **trunk_options):
        super().__init__()
        self.trunk = Trunk(data_shape, width, **trunk_options)
        self.head = nn.Linear(self.trunk.out_dim, 1)

    def forward(self, x):
        return self.head(self.trunk(x)).squeeze(1)


@register("gan-posthoc-encoder")
class GANPosthocEncoder(BidirectionalGAN):
    prior = "normal"
    option_ranges = {**ADAM, "posthoc_fraction": UNIT}
    renamed_options = ADAM_BETAS_RENAMED
    batches_per_step = 1
    capturable = True  # the same kernels every step of a phase (benchmarks/training/capture.py)
    d_steps_per_step = 1  # in the GAN phase only; see the module docstring

    def __init__(self, *, data_shape, z_dim, width, total_steps, arch="shared", lr=2e-4,
                 adam_beta1=0.5, adam_beta2=0.999, init_std=0.02, posthoc_fraction=0.2, random_hparams=False):
        super().__init__(data_shape=data_shape, z_dim=z_dim)
        if arch not in ("shared", "paper"):
            raise ModelConfigError(f"gan-posthoc-encoder: arch must be 'shared' or 'paper', got {arch!r}")
        if not 0 <= posthoc_fraction < 1:
            raise ModelConfigError(f"gan-posthoc-encoder: posthoc_fraction must be in [0, 1), got {posthoc_fraction}")
        self.drawn, lr, adam_beta1, init_std = draw_hparams(random_hparams, lr, adam_beta1, init_std)
        self._cov = arch == "paper" and len(data_shape) == 1
        if self._cov:  # ALI's mixture GAN baseline
            self.G = MixtureGenerator(z_dim, data_shape[0])
            self.E = COVEncoder(data_shape[0], z_dim)
            self.D = MaxoutDiscriminator(data_shape[0])
        else:
            self.G = Generator(data_shape, z_dim, width)
            self.E = Encoder(data_shape, z_dim, width)
            self.D = XDiscriminator(data_shape, width)
        for net in (self.G, self.E, self.D):
            init_normal(net, init_std)
        self.gan_steps = int(total_steps) - int(round(posthoc_fraction * total_steps))
        betas = (adam_beta1, adam_beta2)
        self.optimizers = {"d": adam([self.D], lr, betas), "g": adam([self.G], lr, betas),
                           "e": adam([self.E], lr, betas)}

    def d_updates(self, g_steps):
        return min(g_steps, self.gan_steps)

    def phase(self, step):
        return "gan" if step < self.gan_steps else "posthoc"

    def train_step(self, batch, step):
        if self.phase(step) == "posthoc":
            return self._encoder_step(batch.shape[0])
        return self._paper_gan_step(batch) if self._cov else self._gan_step(batch)

    def encode(self, x):
        return self.E(x, eps=0.0) if self._cov else self.E(x)

    def _paper_gan_step(self, x):
        """ALI's GAN baseline (gan_mixture.py): one D pass over [x, G(z)], softplus losses, both
        players updated from the same forward pass."""
        n = x.shape[0]
        x_gen = self.G(self.sample_latent(n))
        # Both gradients at the same parameters, each from a D pass of its own over the same batch
        # (D has no batch norm or dropout: the same logits), as in ali.py
        logits = self.D(torch.cat([x, x_gen.detach()]))
        with frozen(self.D):
            logits_g = self.D(torch.cat([x, x_gen]))
        data, sample = logits[:n], logits[n:]
        loss_d = F.softplus(-data).mean() + F.softplus(sample).mean()
        # the script's form; the data term has no G gradient
        loss_g = F.softplus(logits_g[:n]).mean() + F.softplus(-logits_g[n:]).mean()
        simultaneous_step((loss_d, self.optimizers["d"]), (loss_g, self.optimizers["g"]))
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "d_real": torch.sigmoid(data).mean().detach(), "d_fake": torch.sigmoid(sample).mean().detach()}

    def _gan_step(self, x):
        bce = F.binary_cross_entropy_with_logits
        z = self.sample_latent(x.shape[0])
        fake = self.G(z)
        real_logit, fake_logit = self.D(x), self.D(fake.detach())
        loss_d = bce(real_logit, torch.ones_like(real_logit)) + bce(fake_logit, torch.zeros_like(fake_logit))
        opt_d, opt_g = self.optimizers["d"], self.optimizers["g"]
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        with frozen(self.D):  # G's loss reaches D's parameters, which it does not train: no gradient for them
            gen_logit = self.D(fake)
        loss_g = bce(gen_logit, torch.ones_like(gen_logit))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        opt_g.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)  # no gradients kept between steps
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "d_real": torch.sigmoid(real_logit).mean().detach(),
                "d_fake": torch.sigmoid(fake_logit).mean().detach()}

    def encoder_loss(self, z):
        """mean((E(G(z)) - z)^2) with G frozen and in eval mode; gradients reach E only."""
        was_training = self.G.training
        self.G.eval()
        with torch.no_grad():
            x = self.G(z)
        self.G.train(was_training)
        return F.mse_loss(self.E(x), z)

    def _encoder_step(self, n):
        loss_e = self.encoder_loss(self.sample_latent(n))
        simultaneous_step((loss_e, self.optimizers["e"]))
        return {"loss_e": loss_e.detach()}
