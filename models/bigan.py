"""BiGAN (Donahue, Kraehenbuehl & Darrell, "Adversarial Feature Learning", ICLR 2017).

Faithful to the released Theano code (jeffdonahue/bigan), on the shared DCGAN-style blocks:

* D(x, z) is a BCE discriminator on (x, E(x)) against (G(z), z). z enters D as a learned
  linear bias added at every layer after the first, before BN and the non-linearity
  (`net.py apply_cond`); those z maps are initialised with std 0.02 * k^2 (k: kernel size).
* D loss = 1/2 BCE(D(x,E(x)), 1) + 1/2 BCE(D(G(z),z), 0).
* G/E loss is the label-swapped ("inverse") non-saturating objective
  1/2 BCE(D(x,E(x)), 0) + 1/2 BCE(D(G(z),z), 1); G and E share one Adam on that one loss.
* Simultaneous updates: D's and (G, E)'s gradients come from one forward pass at the same
  parameters (`update_both` with k=1).
* Real and fake pairs go through D in separate calls, so BN statistics are separate.
* Prior U(-1, 1)^d; E(x) = 2*sigmoid(W h) - 1 with a bias-free W, matching the prior's support.
* Adam lr 2e-4, betas (0.5, 0.999), coupled L2 weight decay 2.5e-5 on weights (not BN gains);
  N(0, 0.02) init. LR constant for the first half of training, then exponential decay to 1%
  over the second half (the paper's 200 + 200 epochs, expressed as a fraction of the budget).

Readings of our own: the final D layer keeps a bias (the shared head), the generator is the
shared DCGAN G without BiGAN's per-layer z re-injection (so all methods share one G), and
BN uses running statistics at evaluation instead of recomputing them over 1000 batches.
"""
import torch
import torch.nn.functional as F

from benchmarks.errors import ConfigError

from .base import BidirectionalGAN, adam, simultaneous_step
from .blocks import Encoder, Generator, JointDiscriminator, init_normal
from .registry import register


def half_then_exp_decay(total_steps, decay_start, final_factor):
    """LR multiplier: 1 until `decay_start * total_steps`, then exponential to `final_factor`."""
    start = int(decay_start * total_steps)
    span = max(1, total_steps - start)

    def factor(step):
        return 1.0 if step < start else final_factor ** (min(step - start, span) / span)

    return factor


@register("bigan")
class BiGAN(BidirectionalGAN):
    prior = "uniform"

    def __init__(self, *, data_shape, z_dim, width, total_steps, arch="shared", lr=2e-4, beta1=0.5, beta2=0.999,
                 weight_decay=2.5e-5, init_std=0.02, decay_start=0.5, final_lr_factor=0.01):
        super().__init__(data_shape=data_shape, z_dim=z_dim)
        if arch != "shared":
            raise ConfigError("bigan: arch 'paper' (the released ImageNet 64x64 nets) is not available yet; use arch.style=shared.")
        self.G = Generator(data_shape, z_dim, width)
        self.E = Encoder(data_shape, z_dim, width, head_bias=False)
        self.D = JointDiscriminator(data_shape, z_dim, width)
        for net in (self.G, self.E, self.D):
            init_normal(net, init_std, zmap_std=lambda layer: init_std * _ksize(layer) ** 2)
        betas = (beta1, beta2)
        self.optimizers = {
            "d": adam([self.D], lr, betas, weight_decay=weight_decay),
            "ge": adam([self.G, self.E], lr, betas, weight_decay=weight_decay),
        }
        factor = half_then_exp_decay(total_steps, decay_start, final_lr_factor)
        self.schedulers = {k: torch.optim.lr_scheduler.LambdaLR(o, factor) for k, o in self.optimizers.items()}

    def encode(self, x):
        return 2 * torch.sigmoid(self.E(x)) - 1

    def train_step(self, batch, step):
        x = batch
        z = self.sample_latent(x.shape[0])
        real = self.D(x, self.encode(x))
        fake = self.D(self.G(z), z)
        ones, zeros = torch.ones_like(real), torch.zeros_like(real)
        bce = F.binary_cross_entropy_with_logits
        loss_d = 0.5 * bce(real, ones) + 0.5 * bce(fake, zeros)
        loss_ge = 0.5 * bce(real, zeros) + 0.5 * bce(fake, ones)
        simultaneous_step((loss_d, self.optimizers["d"]), (loss_ge, self.optimizers["ge"]))
        for s in self.schedulers.values():
            s.step()
        return {"loss_d": loss_d.item(), "loss_ge": loss_ge.item(),
                "d_real": torch.sigmoid(real).mean().item(), "d_fake": torch.sigmoid(fake).mean().item()}


def _ksize(layer):
    return layer.kernel_size[0] if hasattr(layer, "kernel_size") else 1
