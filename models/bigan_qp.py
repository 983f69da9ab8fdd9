"""BiGAN-QP (Su Jianlin, "BiGAN-QP: 简单清晰的编码&生成模型", kexue.fm/archives/6214, 2018;
code bojone/gan-qp `bigan-qp/bigan_qp_128.py`), in four variants:

* `bigan-qp-simple`: the blog's final model and the released code, ΔT = T(x,E(x)) − T(G(z),z);
* `bigan-qp-simple-nosg`: the same without the two stop-gradients (the blog's second form);
* `bigan-qp-full`: the blog's first form, a pairwise critic ΔT = T(a; b) − T(b; a) with
  a = (x, E(x)), b = (G(z), z);
* `bigan-qp-full-nosg`: the pairwise critic without the stop-gradients.

Faithful to the released code:

* Critic T = td_model(concat(te_model(x), z)): te_model is the x-trunk without any bias,
  followed by a bias-free Linear to z_dim; td_model is Linear(2·z_dim→h) → LReLU(0.2) →
  Linear(h→h) → LReLU(0.2) → Linear(h→1), all bias-free, no normalisation. The real and the
  fake x go through te_model in separate calls (separate BN batch statistics).
* Critic loss mean(−ΔT + ΔT²/(2λd)), λ = 10, d = mean|x − G(z)| over pixels + mean|E(x) − z|
  over latent dims, per sample; ΔT and d both of shape (B,) (the code's `d_loss[:, 0]`).
  E(x) and G(z) are computed without gradient in the critic step.
* G/E loss mean(ΔT) + β1·mean((z − E(sg G(z)))²) + β2·mean((x − G(sg E(x)))²), β1 = 2, β2 = 3
  (the 128-px values), per-element means; the QP penalty is not in it; T is not updated.
* Two critic updates, then one G/E update, each on a fresh real batch and fresh z
  (batches_per_step = 3; the harness passes the three batches concatenated).
* N(0, I) prior; deterministic encoder with a linear output (head with bias, no squashing).
* Adam lr 2e-4, betas (0.5, 0.999), ε 1e-7 (Keras' default, not PyTorch's 1e-8); one optimiser
  for T, one for (G, E); no weight decay, no LR schedule. Glorot-uniform weights, zero
  biases (Keras defaults) for every conv/linear layer, in both architectures.
* `arch: paper` builds the code's own nets (`BiGANQPEncoder` as E and, bias-free, as te_model;
  `BiGANQPGenerator`) by its construction rule (num_layers = log2(R) − 3, max channels 8·R, 5×5
  stride-2 'same' convs, BN from the second layer on, LReLU 0.2; G: Dense → BN → ReLU →
  4×4×max_ch, num_layers 5×5 stride-2 transposed convs with BN + ReLU, a last transposed conv to
  the image channels, tanh; Keras BN momentum 0.99 / ε 1e-3, i.e. PyTorch momentum 0.01, eps
  1e-3; td hidden width 1024). Valid at 16, 32 and 64 px (the rule gives 1, 2, 3 middle layers);
  not for 2-D points.

Readings of our own:

* `arch: shared` (default): G is the shared `Generator`, E the shared `Encoder` (head with
  bias), te_model the shared `Trunk` with bias=False plus a bias-free Linear to z_dim. So the
  shared blocks' 4×4 kernels and PyTorch BN defaults apply there; only init is the method's.
* td hidden width: the option `critic_hidden`; None means the x-trunk's last channel count
  (`width * 2**(stages-1)` for images, `width` for points), the released rule: at 128 px the
  code's td width 1024 equals its max_num_channels. With `arch: paper` that is 8·R. So T's MLP
  stays in proportion to the conv trunk at every size instead of dwarfing G at 16 px.
* Pairwise critic (not specified anywhere in the sources; our design, from the released code's parts):
  φ(x, z) = concat(te_model(x), z), T(a; b) = MLP([φ(a), φ(b)]) with the td_model shape and
  input 4·z_dim, ΔT = T(a; b) − T(b; a), antisymmetric by construction. φ is computed for real
  and fake in separate calls (separate BN statistics), then both orderings are formed.
* The "nosg" variants drop both stop-gradients, so both guidance terms reach both E and G
  (the blog's form before its "small adjustment").
* BN running statistics: G and E run in training mode (batch statistics) in the critic step
  and their running averages update there too; T's running averages also update in the G/E
  step (Keras freezes them; T is only ever used in training mode, so this changes nothing).
* Pixels in [−1, 1] as in the code. β1, β2 are kept at the 128-px values at our lower
  resolutions: the guidance terms are per-element means, so they do not scale with size.
* The 2 critic losses are averaged for the loss log (`loss_d`).
"""
import math

import torch
from torch import nn

from models.errors import ModelConfigError
from models.base import BidirectionalGAN, NON_NEGATIVE, POSITIVE, UNIT, adam, frozen, simultaneous_step
from models.blocks import Encoder, Generator, Trunk
from models.registry import register
from models.search import OPTIMISER_SPACE, LogUniform


def qp_critic_loss(delta, dist, lam):
    """mean(−ΔT + ΔT²/(2λd)) over the batch; ΔT and d of shape (B,)."""
    assert delta.dim() == 1 and delta.shape == dist.shape, (tuple(delta.shape), tuple(dist.shape))
    return (-delta + delta.pow(2) / (2 * lam * dist)).mean()


def qp_distance(x_real, x_fake, z_real, z_fake):
    """d = mean|x_real − x_fake| (over pixels) + mean|z_real − z_fake| (over latent dims), shape (B,)."""
    return (x_real - x_fake).abs().flatten(1).mean(1) + (z_real - z_fake).abs().mean(1)


class QPCritic(nn.Module):
    """T over joint samples (x, z). `feature` maps x to (B, z_dim) (te_model).
    Unary (full=False): ΔT = T(x_a, z_a) − T(x_b, z_b).
    Pairwise (full=True): ΔT = T(a; b) − T(b; a), T(a; b) = MLP([φ(a), φ(b)])."""

    def __init__(self, feature, z_dim, hidden, full):
        super().__init__()
        self.feature, self.full = feature, full
        self.mlp = nn.Sequential(
            nn.Linear((4 if full else 2) * z_dim, hidden, bias=False), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden, bias=False), nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1, bias=False))

    def embed(self, x, z):
        return torch.cat([self.feature(x), z], 1)

    def forward(self, x_a, z_a, x_b, z_b):
        """ΔT, shape (B,); a is the real pair, b the fake pair. Separate feature calls."""
        h_a, h_b = self.embed(x_a, z_a), self.embed(x_b, z_b)
        if self.full:
            out = self.mlp(torch.cat([h_a, h_b], 1)) - self.mlp(torch.cat([h_b, h_a], 1))
        else:
            out = self.mlp(h_a) - self.mlp(h_b)
        return out.squeeze(1)


class BiGANQP(BidirectionalGAN):
    """Shared implementation; the registered subclasses set `full` and `stop_gradient`."""

    prior = "normal"
    option_ranges = {"lr": POSITIVE, "adam_beta1": UNIT, "adam_beta2": UNIT, "adam_eps": POSITIVE,
                     "lam": POSITIVE, "z_cycle_weight": NON_NEGATIVE, "x_cycle_weight": NON_NEGATIVE}
    # beta1 / beta2 were the guidance weights' names (the blog's β1, β2), before beta meant Adam's
    renamed_options = {"beta1": "z_cycle_weight", "beta2": "x_cycle_weight"}
    # The quadratic potential's lambda (10) and the two guidance weights (2, 3) set BiGAN-QP's
    # balance of adversarial and reconstruction terms: a decade either side of each, log-spread
    # since they act as ratios. Shared by the four registered variants.
    search_space = {**OPTIMISER_SPACE, "lam": LogUniform(1.0, 100.0), "z_cycle_weight": LogUniform(0.1, 10.0),
                    "x_cycle_weight": LogUniform(0.1, 10.0)}
    batches_per_step = 3  # 2 critic batches + 1 G/E batch
    capturable = True  # the same kernels every step of a phase (benchmarks/training/capture.py)
    d_steps_per_step = 2
    full = False
    stop_gradient = True
    # The critic's gradient is the difference of the real and the fake pairs' gradients, with no
    # saturating link in between: in bf16 that difference is mostly rounding noise, which Adam
    # then turns into full-size steps. So T trains in fp32 even on the fast path.
    fp32_networks = ("D",)

    def __init__(self, *, data_shape, z_dim, width, total_steps, arch="shared", lr=2e-4, adam_beta1=0.5,
                 adam_beta2=0.999, adam_eps=1e-7, lam=10.0, z_cycle_weight=2.0, x_cycle_weight=3.0, critic_hidden=None):
        super().__init__(data_shape=data_shape, z_dim=z_dim)
        name = getattr(self, "registry_name", type(self).__name__)
        points = len(self.data_shape) == 1
        if arch == "paper":
            if points:
                raise ModelConfigError(f"{name}: arch 'paper' is BiGAN-QP's 5x5 conv stack for images; the data are "
                                  f"{self.data_shape} points. Use arch.style=shared for 2-D points.")
            self.G = BiGANQPGenerator(self.data_shape, z_dim)
            self.E = BiGANQPEncoder(self.data_shape, z_dim, bias=True)
            feature = BiGANQPEncoder(self.data_shape, z_dim, bias=False)
            hidden = paper_layers(self.data_shape)[1] if critic_hidden is None else critic_hidden
        elif arch == "shared":
            self.G = Generator(self.data_shape, z_dim, width)
            self.E = Encoder(self.data_shape, z_dim, width, head_bias=True)
            trunk = Trunk(self.data_shape, width, bias=False)
            feature = nn.Sequential(trunk, nn.Linear(trunk.out_dim, z_dim, bias=False))
            hidden = critic_hidden if critic_hidden is not None else trunk.feature_channels
        else:
            raise ModelConfigError(f"{name}: arch must be 'shared' or 'paper', got {arch!r}.")
        self.D = QPCritic(feature, z_dim, int(hidden), self.full)
        for net in (self.G, self.E, self.D):
            glorot_init(net)
        self.lam, self.z_cycle_weight, self.x_cycle_weight = float(lam), float(z_cycle_weight), float(x_cycle_weight)
        betas = (adam_beta1, adam_beta2)
        self.optimizers = {
            "d": adam([self.D], lr, betas, eps=adam_eps),
            "ge": adam([self.G, self.E], lr, betas, eps=adam_eps),
        }

    # --- losses, factored so tests can take them apart ------------------------------------
    def critic_terms(self, x, z):
        """(ΔT, d), both (B,), with E(x) and G(z) computed without gradient."""
        with torch.no_grad():
            ex, gz = self.E(x), self.G(z)
        delta = self.D(x, ex, gz, z)
        dist = qp_distance(x, gz, ex, z)
        assert delta.shape == dist.shape == (x.shape[0],), (tuple(delta.shape), tuple(dist.shape))
        return delta, dist

    def critic_loss(self, x, z):
        delta, dist = self.critic_terms(x, z)
        return qp_critic_loss(delta, dist, self.lam), dist

    def ge_terms(self, x, z):
        """(mean ΔT, z-cycle MSE, x-cycle MSE), unweighted. With `stop_gradient`, the z-cycle
        term reaches only E and the x-cycle term only G."""
        ex, gz = self.E(x), self.G(z)
        with frozen(self.D):  # T is not updated here: no backward computes its gradients
            delta = self.D(x, ex, gz, z)
        assert delta.shape == (x.shape[0],), tuple(delta.shape)
        sg = (lambda t: t.detach()) if self.stop_gradient else (lambda t: t)
        z_cycle = (z - self.E(sg(gz))).pow(2).mean()
        x_cycle = (x - self.G(sg(ex))).pow(2).mean()
        return delta.mean(), z_cycle, x_cycle

    def ge_loss(self, x, z):
        adv, z_cycle, x_cycle = self.ge_terms(x, z)
        return adv + self.z_cycle_weight * z_cycle + self.x_cycle_weight * x_cycle, (adv, z_cycle, x_cycle)

    # --- one step: 2 critic updates, then 1 G/E update, each on a fresh batch --------------
    def train_step(self, batch, step):
        n = batch.shape[0]
        if n % self.batches_per_step:
            raise ValueError(f"{type(self).__name__}.train_step needs {self.batches_per_step} batches "
                             f"concatenated on dim 0; got {n} rows")
        chunks = batch.split(n // self.batches_per_step)
        losses_d, dists = [], []
        for x in chunks[:self.d_steps_per_step]:
            loss_d, dist = self.critic_loss(x, self.sample_latent(x.shape[0]))
            simultaneous_step((loss_d, self.optimizers["d"]))  # grads w.r.t. T only
            losses_d.append(loss_d.detach())
            dists.append(dist.mean().detach())
        x = chunks[-1]
        loss_ge, (adv, z_cycle, x_cycle) = self.ge_loss(x, self.sample_latent(x.shape[0]))
        simultaneous_step((loss_ge, self.optimizers["ge"]))  # grads w.r.t. G and E only; T untouched
        return {"loss_d": torch.stack(losses_d).mean(), "loss_ge": loss_ge.detach(), "delta_t": adv.detach(),
                "dist": torch.stack(dists).mean(), "z_cycle": z_cycle.detach(), "x_cycle": x_cycle.detach()}


@register("bigan-qp-simple")
class BiGANQPSimple(BiGANQP):
    """BiGAN-QP, unary critic ΔT = T(x,E(x)) − T(G(z),z), stop-gradient guidance (the released code)."""

    full, stop_gradient = False, True


@register("bigan-qp-simple-nosg")
class BiGANQPSimpleNoSG(BiGANQP):
    """BiGAN-QP, unary critic, guidance terms without stop-gradient."""

    full, stop_gradient = False, False


@register("bigan-qp-full")
class BiGANQPFull(BiGANQP):
    """BiGAN-QP, pairwise antisymmetric critic T(a;b) − T(b;a), stop-gradient guidance."""

    full, stop_gradient = True, True


@register("bigan-qp-full-nosg")
class BiGANQPFullNoSG(BiGANQP):
    """BiGAN-QP, pairwise antisymmetric critic, guidance terms without stop-gradient."""

    full, stop_gradient = True, False


def glorot_init(module):
    """Keras defaults: Glorot-uniform conv/linear weights, zero biases, unit-gain BN."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# --- arch: paper, bigan_qp_128.py's construction rule at our resolutions ----------------------
KERAS_BN = dict(momentum=0.01, eps=1e-3)  # Keras momentum 0.99, epsilon 1e-3


def paper_layers(data_shape):
    """(num_layers, max_channels) = (log2(R) − 3, 8·R), as in the code."""
    res = data_shape[-1]
    num_layers = int(round(math.log2(res))) - 3 if res > 0 else -1
    if data_shape[-2] != res or 2 ** (num_layers + 3) != res or num_layers < 1:
        raise ModelConfigError(f"BiGAN-QP arch 'paper' needs square power-of-two images of at least 16 px (its rule "
                          f"num_layers = log2(R) - 3 must give >= 1); the data are {tuple(data_shape)}. "
                          "Use arch.style=shared.")
    return num_layers, 8 * res


class BiGANQPEncoder(nn.Module):
    """e_model (bias=True) / te_model (bias=False): num_layers+1 convs 5x5 s2 'same', channels
    max_ch // 2**(num_layers − i), BN from the second on, LReLU 0.2; Flatten → Dense(z_dim)."""

    def __init__(self, data_shape, z_dim, *, bias):
        super().__init__()
        num_layers, max_ch = paper_layers(data_shape)
        layers, cin = [], data_shape[0]
        for i in range(num_layers + 1):
            ch = max_ch // 2 ** (num_layers - i)
            layers.append(nn.Conv2d(cin, ch, 5, 2, 2, bias=bias))
            if i > 0:
                layers.append(nn.BatchNorm2d(ch, **KERAS_BN))
            layers.append(nn.LeakyReLU(0.2))
            cin = ch
        self.net = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(max_ch * 16, z_dim, bias=bias)

    def forward(self, x):
        return self.head(self.net(x))


class BiGANQPGenerator(nn.Module):
    """g_model: Dense(16·max_ch) → BN → ReLU → 4x4xmax_ch; num_layers × [ConvT 5x5 s2 → BN → ReLU]
    with channels max_ch // 2**(i+1); ConvT 5x5 s2 to the image channels → tanh."""

    def __init__(self, data_shape, z_dim):
        super().__init__()
        num_layers, max_ch = paper_layers(data_shape)
        layers = [nn.Linear(z_dim, 16 * max_ch), nn.BatchNorm1d(16 * max_ch, **KERAS_BN), nn.ReLU(),
                  nn.Unflatten(1, (max_ch, 4, 4))]
        cin = max_ch
        for i in range(num_layers):
            ch = max_ch // 2 ** (i + 1)
            layers += [nn.ConvTranspose2d(cin, ch, 5, 2, 2, output_padding=1), nn.BatchNorm2d(ch, **KERAS_BN),
                       nn.ReLU()]
            cin = ch
        layers += [nn.ConvTranspose2d(cin, data_shape[0], 5, 2, 2, output_padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)
