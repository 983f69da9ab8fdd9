"""WGAN-GP BiGAN: a bidirectional GAN with a Wasserstein critic on (x, z) pairs and a gradient
penalty on their joint interpolates. A complete plugin, written against the documented
contract only (examples/README.md):

    python -m benchmarks run digits --budget smoke --plugin examples/wgan_gp_bigan.py --models wgan-gp-bigan,bigan
"""
import torch

import models
from models.base import BidirectionalGAN, adam, frozen
from models.blocks import Encoder, Generator, JointDiscriminator


@models.register("wgan-gp-bigan")
class WGANGPBiGAN(BidirectionalGAN):
    """WGAN-GP BiGAN (example plugin): Wasserstein critic on (x, z), gradient penalty 10."""

    prior = "normal"        # z ~ N(0, I); E's linear head matches its support
    batches_per_step = 3    # two critic steps on fresh batches, then one E/G step
    d_steps_per_step = 2
    networks = ("G", "E", "D")

    def __init__(self, *, data_shape, z_dim, width, arch, total_steps, lr=1e-4, gp=10.0):
        super().__init__(data_shape=data_shape, z_dim=z_dim)
        del arch, total_steps  # the harness passes them to every model; this one needs neither
        self.G = Generator(data_shape, z_dim, width)          # z -> x in [-1, 1]
        self.E = Encoder(data_shape, z_dim, width)            # x -> z, a linear head
        self.D = JointDiscriminator(data_shape, z_dim, width, norm=False)  # (x, z) -> score (B,); no BN under a GP
        self.gp = float(gp)
        self.optimizers = {"d": adam([self.D], lr, (0.5, 0.9)), "ge": adam([self.G, self.E], lr, (0.5, 0.9))}

    def penalty(self, x_real, z_real, x_fake, z_fake):
        """(||grad of D at a random point between the two pairs|| - 1)^2, over x and z together."""
        eps = torch.rand(len(x_real), 1, device=x_real.device)
        x = (eps.view(-1, *[1] * (x_real.dim() - 1)) * x_real + (1 - eps.view(-1, *[1] * (x_real.dim() - 1))) * x_fake)
        z = eps * z_real + (1 - eps) * z_fake
        x, z = x.detach().requires_grad_(), z.detach().requires_grad_()
        gx, gz = torch.autograd.grad(self.D(x, z).sum(), (x, z), create_graph=True)
        return ((gx.flatten(1).pow(2).sum(1) + gz.pow(2).sum(1)).sqrt() - 1).pow(2).mean()

    def train_step(self, batch, step):
        *critic_batches, x = batch.chunk(self.batches_per_step)  # batch: 3 real batches in [-1, 1]
        for x_real in critic_batches:
            with torch.no_grad():  # the critic's step: E's and G's outputs are fixed inputs
                z_real = self.E(x_real)
                z_fake = self.sample_latent(len(x_real))
                x_fake = self.G(z_fake)
            loss_d = (self.D(x_fake, z_fake).mean() - self.D(x_real, z_real).mean()
                      + self.gp * self.penalty(x_real, z_real, x_fake, z_fake))
            self.optimizers["d"].zero_grad(set_to_none=True)
            loss_d.backward(inputs=list(self.D.parameters()))
            self.optimizers["d"].step()
        # E and G: real pairs should score like fake ones and fake like real. backward(inputs=...)
        # leaves D's gradients alone (and DistributedDataParallel averages in backward's hooks).
        z = self.sample_latent(len(x))
        with frozen(self.D):  # D is not trained here: no backward computes its weight gradients
            loss_ge = self.D(x, self.E(x)).mean() - self.D(self.G(z), z).mean()
        self.optimizers["ge"].zero_grad(set_to_none=True)
        loss_ge.backward(inputs=[*self.G.parameters(), *self.E.parameters()])
        self.optimizers["ge"].step()
        return {"loss_d": loss_d.detach(), "loss_ge": loss_ge.detach()}  # scalars; detached: no host sync
