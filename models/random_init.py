"""Reference row: the shared E and G at initialisation, never trained; the floor for the
representation columns (what a linear probe reads from random convolutional features).

* The autoencoder row's networks and init (shared `Encoder` and `Generator`, N(0, 0.02)
  weights, zero biases, unit-gain BN), built from the run's seed, then left alone: no
  optimiser, no discriminator (params_d = 0, d_steps_per_step = 0).
* Batch norm keeps its initial running statistics (mean 0, variance 1): each step only
  evaluates, in eval mode, the reconstruction error the untrained pair makes, for the loss log.
  That forward pass trains nothing, so the harness charges it no FLOPs (`idle_phases`).
"""
import torch
import torch.nn.functional as F

from models.errors import ModelConfigError
from models.base import BidirectionalGAN, POSITIVE
from models.blocks import Encoder, Generator, init_normal
from models.registry import register


@register("random-init")
class RandomInit(BidirectionalGAN):
    prior = "normal"
    option_ranges = {"init_std": POSITIVE}
    search_space = {}  # a reference, never trained: nothing to tune
    networks = ("G", "E")  # no discriminator: params_d = 0
    batches_per_step = 1
    d_steps_per_step = 0
    idle_phases = frozenset({"train"})  # its only phase: the step evaluates, for the loss log

    def __init__(self, *, data_shape, z_dim, width, total_steps, arch="shared", init_std=0.02):
        super().__init__(data_shape=data_shape, z_dim=z_dim)
        if arch not in ("shared", "paper"):
            raise ModelConfigError(f"random-init: arch must be 'shared' or 'paper', got {arch!r}")
        self.G = Generator(data_shape, z_dim, width)
        self.E = Encoder(data_shape, z_dim, width)
        for net in (self.G, self.E):
            init_normal(net, init_std)
            net.requires_grad_(False)

    @torch.no_grad()
    def train_step(self, batch, step):
        was_training = self.training
        self.eval()  # never touch the BN running statistics: nothing here is trained
        try:
            return {"loss_rec": F.mse_loss(self.G(self.E(batch)), batch)}
        finally:
            self.train(was_training)
