"""Is the BiGAN-QP toy2d step slow because of the harness, or because of its own work?

Times, alternating, at one thread: the harness's `bigan-qp-simple` step (`benchmarks.perf.perf.
harness_speed`: batch cut, `train_step`, loss read), the same step written by hand in plain
PyTorch (the same parameter shapes, checked below; the same losses, two critic updates and one
G/E update on three fresh batches, foreach Adam), and the hand-written step with both loss
functions under `torch.compile` (inductor; forward and backward of each loss become one
compiled graph each). Prints the minimum and every pass, ms per step, and the matrix products
per step that torch.profiler counts for the harness and the hand-written step.

    OMP_NUM_THREADS=1 python -m benchmarks.perf.toy2d.plain_qp [steps] [passes]
"""
import sys
import time

import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from benchmarks.perf.toy2d import setup
from benchmarks.perf.perf import harness_speed, timed_steps
from models.blocks import count_params

MODEL = "bigan-qp-simple"


def mlp(sizes, *, bias, norm_from, act):
    """Linear layers of `sizes`; `act` after each hidden one, BN before it from hidden layer
    `norm_from` on (None: no BN)."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b, bias=bias))
        if i < len(sizes) - 2:
            layers += [nn.BatchNorm1d(b)] if norm_from is not None and i >= norm_from else []
            layers.append(act())
    return nn.Sequential(*layers)


class PlainQP:
    """bigan-qp-simple on points, by hand: G z→[Linear, BN, ReLU]×3→2; E x→Linear, LReLU,
    [Linear, BN, LReLU]×2→Linear (with bias); T = bias-free MLP 2·z_dim→w→w→1 over
    concat(feature(x), z), feature = E's shape without biases."""

    def __init__(self, z_dim, width, lam=10.0, z_cycle_weight=2.0, x_cycle_weight=3.0):
        lrelu = lambda: nn.LeakyReLU(0.2)  # noqa: E731
        self.G = mlp([z_dim, width, width, width, 2], bias=True, norm_from=0, act=nn.ReLU)
        self.E = mlp([2, width, width, width, z_dim], bias=True, norm_from=1, act=lrelu)
        self.F = mlp([2, width, width, width, z_dim], bias=False, norm_from=1, act=lrelu)
        self.T = mlp([2 * z_dim, width, width, 1], bias=False, norm_from=None, act=lrelu)
        self.z_dim, self.lam, self.z_cycle_weight, self.x_cycle_weight = z_dim, lam, z_cycle_weight, x_cycle_weight
        self.d_params = [*self.F.parameters(), *self.T.parameters()]
        self.ge_params = [*self.G.parameters(), *self.E.parameters()]
        adam = dict(lr=2e-4, betas=(0.5, 0.999), eps=1e-7, foreach=True)
        self.opt_d, self.opt_ge = torch.optim.Adam(self.d_params, **adam), torch.optim.Adam(self.ge_params, **adam)
        self.critic_loss, self.ge_loss = self._critic_loss, self._ge_loss

    def compile(self):
        self.critic_loss, self.ge_loss = torch.compile(self._critic_loss), torch.compile(self._ge_loss)

    def delta(self, x, ex, gz, z):
        return (self.T(torch.cat([self.F(x), ex], 1)) - self.T(torch.cat([self.F(gz), z], 1))).squeeze(1)

    def _critic_loss(self, x, z):
        with torch.no_grad():
            ex, gz = self.E(x), self.G(z)
        dt = self.delta(x, ex, gz, z)
        d = (x - gz).abs().mean(1) + (ex - z).abs().mean(1)
        return (-dt + dt.pow(2) / (2 * self.lam * d)).mean()

    def _ge_loss(self, x, z):
        ex, gz = self.E(x), self.G(z)
        adv = self.delta(x, ex, gz, z).mean()
        return (adv + self.z_cycle_weight * (z - self.E(gz.detach())).pow(2).mean()
                + self.x_cycle_weight * (x - self.G(ex.detach())).pow(2).mean())

    def step(self, batch):
        for x in batch.split(len(batch) // 3)[:2]:
            loss = self.critic_loss(x, torch.randn(len(x), self.z_dim))
            self.opt_d.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_d.step()
        x = batch[-len(batch) // 3:]
        loss = self.ge_loss(x, torch.randn(len(x), self.z_dim))
        self.opt_ge.zero_grad(set_to_none=True)
        loss.backward(inputs=self.ge_params)
        self.opt_ge.step()


def time_plain(plain, x, steps, runtime, warmup=20):
    """Seconds for `steps` hand-written steps on random batches of 3 x 100, after `warmup`."""
    g = torch.Generator().manual_seed(0)
    batches = [x[torch.randint(len(x), (300,), generator=g)] for _ in range(warmup + steps)]
    return timed_steps(lambda i: plain.step(batches[i]), steps, warmup, runtime)


def matmuls_per_step(fn, n=10):
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n):
            fn()
    return sum(e.count for e in prof.key_averages() if e.key in ("aten::mm", "aten::addmm")) / n


if __name__ == "__main__":
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    passes = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    torch.set_num_threads(1)
    cfg, data, runtime = setup()
    x = data.train.x.float()
    _, _, model, _ = harness_speed(MODEL, cfg, data, 10, 5, runtime)
    torch.manual_seed(0)
    eager = PlainQP(model.z_dim, model.G.net[0].out_features)
    shapes = {"G": (model.G, eager.G), "E": (model.E, eager.E), "D": (model.D, nn.ModuleList([eager.F, eager.T]))}
    for name, (ours, hand) in shapes.items():
        assert count_params(ours) == count_params(hand), (name, count_params(ours), count_params(hand))
        print(f"{name}: {count_params(ours)} parameters in both")
    compiled = PlainQP(model.z_dim, model.G.net[0].out_features)
    compiled.compile()
    t = time.perf_counter()
    time_plain(compiled, x, 1, runtime, warmup=3)
    print(f"compilation (first steps): {time.perf_counter() - t:.1f} s")

    batch = x[:300]
    model.train()
    print("matrix products per step: harness", matmuls_per_step(lambda: model.train_step(batch, 0)),
          "hand-written", matmuls_per_step(lambda: eager.step(batch)))

    rows = {"harness `train_step`": [], "hand-written, eager": [], "hand-written, losses compiled": []}
    for p in range(passes):
        rows["hand-written, eager"].append(time_plain(eager, x, steps, runtime))
        rows["harness `train_step`"].append(harness_speed(MODEL, cfg, data, steps, 20, runtime)[0])
        rows["hand-written, losses compiled"].append(time_plain(compiled, x, steps, runtime))
        print(f"pass {p + 1} done", flush=True)
    print(f"\n{MODEL}, {steps} steps per pass, ms per step (min; every pass)\n")
    print("| step | min | passes |\n|---|---|---|")
    for name, secs in rows.items():
        ms = [1000 * s / steps for s in secs]
        print(f"| {name} | {min(ms):.2f} | {', '.join(f'{v:.2f}' for v in ms)} |")
