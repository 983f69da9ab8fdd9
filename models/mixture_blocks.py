"""ALI's released networks for the 2-D Gaussian mixture, built by `arch: paper` on 2-D points
(IshmaelBelghazi/ALI, `experiments/ali_mixture.py` for ALI and `experiments/gan_mixture.py` for
its GAN baseline; `ali/bricks.py` for COVConditional and the losses):

* G: z -> 4 x [Linear 400 without bias -> BN -> ReLU] -> Linear to x (with bias), no squashing.
* E (ALI; also the post-hoc encoder, "the same architecture as ALI's encoder"): a change of
  variables, E(x, eps) with eps ~ N(0, I) the size of x: [x, eps] -> 2 x [Linear 400 without
  bias -> BN -> ReLU] -> Linear to z (with bias).
* D: 3 x LinearMaxout(200 units, 5 pieces) -> Linear 1, no BN; ALI's D reads [x, z] (its x and
  z paths are identities), the GAN's D reads x. The scripts define dropout but build the
  training graph with `with_dropout=False`: none.
* Init: every weight N(0, 0.02), every bias 0 (the top brick's GAUSSIAN_INIT / ZERO_INIT), BN
  gain 1 and shift 0.
* BN: Blocks' epsilon 1e-4; population statistics p <- 0.95 p + 0.05 m per batch (the scripts'
  `bn_updates`), PyTorch momentum 0.05. Training uses batch statistics, evaluation the
  population ones.
* Adam lr 1e-4, beta1 0.8 (Blocks' beta2 0.999 and epsilon 1e-8), batch 100, and one
  simultaneous update of D and (G, E) from one forward pass (`ali_algorithm`, for both scripts).

The paper trains each model 10 times "using Adam with random learning rate and beta1 values, and
the weights were initialized by drawing from a gaussian distribution with a random standard
deviation"; the ranges are not published (`draw_hparams` states ours).
"""
import math

import torch
from torch import nn

HIDDEN_G, HIDDEN_D, PIECES = 400, 200, 5
PAPER_ADAM = dict(lr=1e-4, adam_beta1=0.8, init_std=0.02)


def _bn(n):
    return nn.BatchNorm1d(n, eps=1e-4, momentum=0.05)


def mlp(dims):
    """Linear without bias -> BN -> ReLU for each hidden width, then a Linear with bias."""
    layers = []
    for a, b in zip(dims[:-2], dims[1:-1]):
        layers += [nn.Linear(a, b, bias=False), _bn(b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(dims[-2], dims[-1]))


class MixtureGenerator(nn.Module):
    def __init__(self, z_dim, x_dim):
        super().__init__()
        self.net = mlp([z_dim] + [HIDDEN_G] * 4 + [x_dim])

    def forward(self, z):
        return self.net(z)


class COVEncoder(nn.Module):
    """E(x, eps): the noise enters as extra inputs. `forward(x)` draws eps (training, and ALI's
    sampling of q(z | x)); `forward(x, eps=0)` is the deterministic code the harness evaluates."""

    def __init__(self, x_dim, z_dim):
        super().__init__()
        self.net = mlp([2 * x_dim, HIDDEN_G, HIDDEN_G, z_dim])

    def forward(self, x, eps=None):
        eps = torch.randn_like(x) if eps is None else torch.zeros_like(x) + eps
        return self.net(torch.cat([x, eps], 1))


class LinearMaxout(nn.Module):
    """Blocks' LinearMaxout: a Linear to units * pieces, then the max over each unit's pieces."""

    def __init__(self, n_in, units, pieces):
        super().__init__()
        self.linear, self.units, self.pieces = nn.Linear(n_in, units * pieces), units, pieces

    def forward(self, x):
        return self.linear(x).view(x.shape[0], self.units, self.pieces).max(-1).values


class MaxoutDiscriminator(nn.Module):
    """D(input) -> logit (B,); ALI passes the concatenation [x, z]."""

    def __init__(self, n_in):
        super().__init__()
        self.net = nn.Sequential(LinearMaxout(n_in, HIDDEN_D, PIECES), LinearMaxout(HIDDEN_D, HIDDEN_D, PIECES),
                                 LinearMaxout(HIDDEN_D, HIDDEN_D, PIECES), nn.Linear(HIDDEN_D, 1))

    def forward(self, *parts):
        return self.net(torch.cat(parts, 1)).squeeze(1)


def draw_hparams(random, lr, adam_beta1, init_std):
    """(drawn, lr, adam_beta1, init_std): the given values and drawn = {} unless `random`; then the
    paper's per-run random Adam learning rate, beta1 and init std around the given (the released
    script's) values, with drawn = {"lr", "adam_beta1", "init_std"}. The paper gives no ranges; ours:
    lr log-uniform over [lr/3, 3 lr], adam_beta1 uniform over [0.5, 0.9], init std log-uniform over
    [std/2, 2 std]. Drawn from the global RNG, which the harness seeds with the run's seed before
    building: the draw is a function of the seed."""
    if not random:
        return {}, lr, adam_beta1, init_std
    u = torch.rand(3, dtype=torch.float64).tolist()
    drawn = {"lr": lr * math.exp(math.log(3) * (2 * u[0] - 1)), "adam_beta1": 0.5 + 0.4 * u[1],
             "init_std": init_std * math.exp(math.log(2) * (2 * u[2] - 1))}
    return drawn, drawn["lr"], drawn["adam_beta1"], drawn["init_std"]
