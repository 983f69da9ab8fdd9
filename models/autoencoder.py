"""Reference row: a deterministic autoencoder with the shared E and G.

What reconstruction and representation look like when a model is trained on reconstruction
alone, with the same networks as the bidirectional GANs:

* E is the shared `Encoder` (linear head, z_dim outputs), G the shared `Generator`.
* Loss: mean over elements of (x - G(E(x)))^2 (pixels in [-1, 1]), one real batch per step.
* One Adam over G and E, lr 2e-4, betas (0.5, 0.999) (BiGAN-QP's optimiser); constant LR.
* No discriminator: `networks = ("G", "E")` (params_d = 0) and d_steps_per_step = 0.

Readings of our own:
* Init N(0, 0.02), biases 0 (DCGAN's; `init_std` option), like the post-hoc-encoder row.
* `sample_latent` draws from N(0, I) (prior "normal"), but nothing makes the code distribution
  of an autoencoder match that prior: its samples.png is shown for completeness only, and its
  samples say nothing about generation quality.
* `arch: paper`: a reference row has no published network, so both styles build the shared nets.
"""
import torch.nn.functional as F

from models.errors import ModelConfigError

from models.base import ADAM, ADAM_BETAS_RENAMED, BidirectionalGAN, adam, simultaneous_step
from models.blocks import Encoder, Generator, init_normal
from models.registry import register


@register("autoencoder")
class Autoencoder(BidirectionalGAN):
    prior = "normal"
    option_ranges = ADAM
    renamed_options = ADAM_BETAS_RENAMED
    networks = ("G", "E")  # no discriminator: params_d = 0
    batches_per_step = 1
    capturable = True  # the same kernels every step of a phase (benchmarks/training/capture.py)
    d_steps_per_step = 0  # no discriminator

    def __init__(self, *, data_shape, z_dim, width, total_steps, arch="shared", lr=2e-4,
                 adam_beta1=0.5, adam_beta2=0.999, init_std=0.02):
        super().__init__(data_shape=data_shape, z_dim=z_dim)
        if arch not in ("shared", "paper"):
            raise ModelConfigError(f"autoencoder: arch must be 'shared' or 'paper', got {arch!r}")
        self.G = Generator(data_shape, z_dim, width)
        self.E = Encoder(data_shape, z_dim, width)
        for net in (self.G, self.E):
            init_normal(net, init_std)
        self.optimizers = {"ae": adam([self.G, self.E], lr, (adam_beta1, adam_beta2))}

    def reconstruction_loss(self, x):
        return F.mse_loss(self.G(self.E(x)), x)

    def train_step(self, batch, step):
        loss = self.reconstruction_loss(batch)
        simultaneous_step((loss, self.optimizers["ae"]))
        return {"loss_rec": loss.detach()}
