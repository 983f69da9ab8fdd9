"""A hand-written PyTorch BiGAN on 2-D points: the yardstick for the harness's per-step cost.

The networks have the shapes `models/bigan.py` builds for points from the shared blocks
(`models/blocks.py`, 3 hidden layers of `width`), written out by hand:

* G: z -> [Linear, BN, ReLU] x 3 -> Linear to 2 (no output squashing for points);
* E: x -> Linear, LeakyReLU(0.2), [Linear, BN, LeakyReLU] x 2 -> bias-free Linear to z_dim,
  then 2*sigmoid-1;
* D: the same trunk as E with a bias-free Linear(z) added before BN in layers 2 and 3, then a
  Linear to one logit.

Same batch, prior U(-1, 1), BCE losses with label-swapped G/E loss, simultaneous update, Adam
(lr 2e-4, betas (0.5, 0.999), coupled L2 2.5e-5 on weight matrices). What it leaves out is the
model's bookkeeping the harness step also pays for: the LR schedule and the d_real/d_fake means.
The loop is what one would write by hand: a random batch by index, no logging, no checks.
"""
import time

import torch
import torch.nn.functional as F
from torch import nn


class _D(nn.Module):
    def __init__(self, z_dim, width):
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(2, width), nn.Linear(width, width), nn.Linear(width, width)
        self.z2, self.z3 = nn.Linear(z_dim, width, bias=False), nn.Linear(z_dim, width, bias=False)
        self.bn2, self.bn3 = nn.BatchNorm1d(width), nn.BatchNorm1d(width)
        self.head = nn.Linear(width, 1)

    def forward(self, x, z):
        h = F.leaky_relu(self.l1(x), 0.2)
        h = F.leaky_relu(self.bn2(self.l2(h) + self.z2(z)), 0.2)
        h = F.leaky_relu(self.bn3(self.l3(h) + self.z3(z)), 0.2)
        return self.head(h).squeeze(1)


def build(z_dim=2, width=128, lr=2e-4, betas=(0.5, 0.999), weight_decay=2.5e-5):
    """(G, E, D, opt_d, opt_ge) with BiGAN's toy2d shapes and Adam settings."""
    G = nn.Sequential(nn.Linear(z_dim, width), nn.BatchNorm1d(width), nn.ReLU(),
                      nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(),
                      nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Linear(width, 2))
    E = nn.Sequential(nn.Linear(2, width), nn.LeakyReLU(0.2),
                      nn.Linear(width, width), nn.BatchNorm1d(width), nn.LeakyReLU(0.2),
                      nn.Linear(width, width), nn.BatchNorm1d(width), nn.LeakyReLU(0.2),
                      nn.Linear(width, z_dim, bias=False))
    D = _D(z_dim, width)

    def adam(*nets):
        params = [p for n in nets for p in n.parameters()]
        return torch.optim.Adam([{"params": [p for p in params if p.dim() > 1], "weight_decay": weight_decay},
                                 {"params": [p for p in params if p.dim() <= 1]}], lr=lr, betas=betas)

    return G, E, D, adam(D), adam(G, E)


def time_steps(steps, data, *, z_dim=2, width=128, batch_size=100, warmup=20, seed=0, **adam):
    """Seconds for `steps` plain BiGAN steps on `data` (N, 2) after `warmup` untimed ones;
    `adam`: build()'s lr, betas, weight_decay."""
    torch.manual_seed(seed)
    G, E, D, opt_d, opt_ge = build(z_dim, width, **adam)
    d_params = list(D.parameters())
    ge_params = list(G.parameters()) + list(E.parameters())
    for net in (G, E, D):
        net.train()

    def step():
        x = data[torch.randint(len(data), (batch_size,))]
        z = torch.rand(batch_size, z_dim) * 2 - 1
        real = D(x, 2 * torch.sigmoid(E(x)) - 1)
        fake = D(G(z), z)
        ones, zeros = torch.ones_like(real), torch.zeros_like(real)
        bce = F.binary_cross_entropy_with_logits
        loss_d = 0.5 * bce(real, ones) + 0.5 * bce(fake, zeros)
        loss_ge = 0.5 * bce(real, zeros) + 0.5 * bce(fake, ones)
        opt_d.zero_grad(set_to_none=True)
        opt_ge.zero_grad(set_to_none=True)
        loss_d.backward(inputs=d_params, retain_graph=True)
        loss_ge.backward(inputs=ge_params)
        opt_d.step()
        opt_ge.step()

    for _ in range(warmup):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - t
