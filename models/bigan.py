"""BiGAN (Donahue, Kraehenbuehl & Darrell, "Adversarial Feature Learning", ICLR 2017).

Faithful to the released Theano code (jeffdonahue/bigan), on the shared DCGAN-style blocks:

* D(x, z) is a BCE discriminator on (x, E(x)) against (G(z), z). z enters D as a learned
  linear bias added at every layer after the first, before BN and the non-linearity
  (`net.py apply_cond`); those z maps are initialised with std 0.02 * k^2 (k: kernel size).
* D loss (`d_loss`) = 1/2 BCE(D(x,E(x)), 1) + 1/2 BCE(D(G(z),z), 0).
* G/E loss (`ge_loss`) is the label-swapped ("inverse") non-saturating objective
  1/2 BCE(D(x,E(x)), 0) + 1/2 BCE(D(G(z),z), 1); G and E share one Adam on that one loss.
* Simultaneous updates: D's and (G, E)'s gradients are taken at the same parameters
  (`update_both` with k=1). The released code reads both from one forward pass; here each
  comes from a pass of its own over the same batch (the same logits), so that a compiled D
  computes its weight gradients once (models/base.py `frozen`).
* Real and fake pairs go through D in separate calls, so BN statistics are separate.
* Prior U(-1, 1)^d; E(x) = 2*sigmoid(W h) - 1 with a bias-free W, matching the prior's support.
* Adam lr 2e-4, betas (0.5, 0.999), coupled L2 weight decay 2.5e-5 on weights (not BN gains);
  N(0, 0.02) init. LR constant for the first half of training, then exponential decay to 1%
  over the second half (the paper's 200 + 200 epochs, expressed as a fraction of the budget).

Readings of our own: with `arch: shared` (the default) the final D layer keeps a bias (the
shared head) and the generator is the shared DCGAN G without BiGAN's per-layer z
re-injection, so all methods share one G. `arch: paper` (64x64 only) builds the released
ImageNet nets: AlexNet-to-conv5 E (`BiGANEncoder`), deconvnet_64 G with z re-injected
(`BiGANGenerator`), convnet_64 D (the shared `JointDiscriminator`, 5x5 bias-free convs from 64
channels). BN uses running statistics at evaluation instead of recomputing them over 1000 batches.
"""
import torch
import torch.nn.functional as F
from torch import nn

from models.errors import ModelConfigError

from models.base import (ADAM, ADAM_BETAS_RENAMED, BidirectionalGAN, NON_NEGATIVE, POSITIVE, UNIT, adam, frozen,
                         simultaneous_step)
from models.blocks import Encoder, Generator, JointDiscriminator, init_normal
from models.registry import register
from models.search import OPTIMISER_SPACE, LogUniform


def d_loss(real, fake):
    """D's loss from its logits on real pairs (x, E(x)) and fake pairs (G(z), z):
    1/2 BCE(real, 1) + 1/2 BCE(fake, 0)."""
    bce = F.binary_cross_entropy_with_logits
    return 0.5 * bce(real, torch.ones_like(real)) + 0.5 * bce(fake, torch.zeros_like(fake))


def ge_loss(real, fake):
    """What G and E minimise together: D's loss with the labels swapped (the "inverse"
    non-saturating objective), 1/2 BCE(real, 0) + 1/2 BCE(fake, 1)."""
    bce = F.binary_cross_entropy_with_logits
    return 0.5 * bce(real, torch.zeros_like(real)) + 0.5 * bce(fake, torch.ones_like(fake))


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
    # the same kernels every step (capture.py); the LR schedule reaches the graph as a filled tensor
    capturable = True
    option_ranges = {**ADAM, "weight_decay": NON_NEGATIVE, "decay_start": UNIT, "final_lr_factor": POSITIVE}
    renamed_options = ADAM_BETAS_RENAMED
    # The released code's coupled L2 (2.5e-5) is part of BiGAN's recipe: tuned a decade and more
    # either side of it, beside the shared learning rate and beta1.
    search_space = {**OPTIMISER_SPACE, "weight_decay": LogUniform(1e-6, 1e-3)}

    def __init__(self, *, data_shape, z_dim, width, total_steps, arch="shared", lr=2e-4,
                 adam_beta1=0.5, adam_beta2=0.999, weight_decay=2.5e-5, init_std=0.02, decay_start=0.5,
                 final_lr_factor=0.01):
        super().__init__(data_shape=data_shape, z_dim=z_dim)
        if arch == "paper":
            if tuple(data_shape[1:]) != (64, 64):
                raise ModelConfigError(f"bigan: arch 'paper' is the released 64x64 ImageNet architecture; the data are "
                                  f"{tuple(data_shape)}. Use arch.style=shared at other resolutions.")
            self.G = BiGANGenerator(data_shape[0], z_dim)
            self.E = BiGANEncoder(data_shape[0], z_dim)
            self.D = JointDiscriminator(data_shape, z_dim, 64, head_bias=False, bias=False, kernel=5)
        else:
            self.G = Generator(data_shape, z_dim, width)
            self.E = Encoder(data_shape, z_dim, width, head_bias=False)
            self.D = JointDiscriminator(data_shape, z_dim, width)
        for net in (self.G, self.E, self.D):
            init_normal(net, init_std, zmap_std=lambda layer: init_std * _ksize(layer) ** 2)
        betas = (adam_beta1, adam_beta2)
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
        ex, gz = self.encode(x), self.G(z)
        # Both players' gradients at the same parameters. Eager autograd differentiates each loss
        # only back to the parameters its backward asks for, so one D pass serves both. A compiled
        # D's backward computes every weight gradient, so there each loss gets a D pass of its
        # own: D's on detached pairs, G's and E's through a frozen D; the second pass computes the
        # same logits (same parameters, batch statistics) and leaves D's running averages to the first.
        if "D" in self.compiled_networks:
            real, fake = self.D(x, ex.detach()), self.D(gz.detach(), z)
            with frozen(self.D, running_stats=False):
                real_ge, fake_ge = self.D(x, ex), self.D(gz, z)
        else:
            real_ge, fake_ge = real, fake = self.D(x, ex), self.D(gz, z)
        loss_d, loss_ge = d_loss(real, fake), ge_loss(real_ge, fake_ge)
        simultaneous_step((loss_d, self.optimizers["d"]), (loss_ge, self.optimizers["ge"]))
        for s in self.schedulers.values():
            s.step()
        return {"loss_d": loss_d.detach(), "loss_ge": loss_ge.detach(),
                "d_real": torch.sigmoid(real).mean().detach(), "d_fake": torch.sigmoid(fake).mean().detach()}


def _ksize(layer):
    return layer.kernel_size[0] if hasattr(layer, "kernel_size") else 1


# --- arch: paper, the released 64x64 ImageNet nets (train_imagenet.sh, net.py) -------------
# D is convnet_64 (the shared Trunk with 5x5 bias-free convs, widths 64..512, z added from the
# second layer on, bias-free FC 1 head). Convs have no bias: BN supplies it.


class BiGANEncoder(nn.Module):
    """alexnet_group_padpool through conv5: 64 -> 16 -> 8 -> 8 -> 4 -> 4, then FC to z (no bias)."""

    def __init__(self, channels, z_dim):
        super().__init__()
        act = nn.LeakyReLU(0.2)

        def block(cin, cout, k, groups=1, stride=1):
            return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout), act]

        self.net = nn.Sequential(
            nn.Conv2d(channels, 96, 11, 4, 5), act, nn.MaxPool2d(3, 2, 1),
            *block(96, 256, 5, groups=2), nn.MaxPool2d(3, 2, 1),
            *block(256, 384, 3), *block(384, 384, 3, groups=2), *block(384, 256, 3, groups=2),
            nn.Flatten())
        self.head = nn.Linear(256 * 16, z_dim, bias=False)

    def forward(self, x):
        return self.head(self.net(x))


class BiGANGenerator(nn.Module):
    """deconvnet_64: FC 8192 -> 512x4x4, three 5x5 stride-2 deconvs with z added as a bias
    before each BN (the same `cond` mechanism as D), a last deconv, then 2*sigmoid-1."""

    def __init__(self, channels, z_dim):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(z_dim, 512 * 16, bias=False), nn.BatchNorm1d(512 * 16), nn.ReLU())
        chans = [512, 256, 128, 64]
        self.layers = nn.ModuleList(nn.ConvTranspose2d(a, b, 5, 2, 2, output_padding=1, bias=False)
                                    for a, b in zip(chans, chans[1:]))
        self.zmaps = nn.ModuleList(nn.Linear(z_dim, b, bias=False) for b in chans[1:])
        self.norms = nn.ModuleList(nn.BatchNorm2d(b) for b in chans[1:])
        self.out = nn.ConvTranspose2d(64, channels, 5, 2, 2, output_padding=1, bias=False)

    def forward(self, z):
        h = self.fc(z).view(-1, 512, 4, 4)
        for layer, zmap, bn in zip(self.layers, self.zmaps, self.norms):
            h = torch.relu(bn(layer(h) + zmap(z)[:, :, None, None]))
        return 2 * torch.sigmoid(self.out(h)) - 1
