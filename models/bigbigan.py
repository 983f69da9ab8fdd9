"""BigBiGAN, scaled down (Donahue & Simonyan, "Large Scale Adversarial Representation
Learning", NeurIPS 2019); networks in models/biggan_blocks.py.

Faithful to the paper and its released TF-Hub modules / colab:

* Joint D = F (BigGAN D trunk on x: SN, ReLU, global sum pool) + H (residual SN-MLP on z) +
  J (residual SN-MLP on [F(x), H(z)]), three scores s_x = lin(F(x)), s_z = lin(H(z)),
  s_xz = J(...). D minimises the hinge on all three,
      L_D = sum_s mean(relu(1 - s(x, E(x)))) + sum_s mean(relu(1 + s(G(z), z))),
  and E and G the unhinged scores,
      L_EG = mean(s_x + s_z + s_xz over (x, E(x))) - mean(s_x + s_z + s_xz over (G(z), z)).
  The paper's *sum* over the three terms; the official colab averages them (a factor 1/3,
  only a loss-scale change under Adam). No reconstruction loss, no KL.
* `unary` (Table 1's ablation): "both" (the default, the full model above), "x" (s_x and
  s_xz: "x Unary Only"), "z" (s_z and s_xz: "z Unary Only") or "none" (s_xz alone: the
  "No Unaries (BiGAN)" row), in D's hinge and in E/G's loss alike.
* G = BigGAN G made unconditional by one learned class embedding (the "single label"
  setup), hierarchical z: chunk 0 feeds the 4x4 linear, chunk k (+ the embedding) the
  conditional BNs of up-block k. SN on every conv/linear of G and D (not on the embedding),
  orthogonal init, BN in G, self-attention where the size says, tanh output.
* Stochastic E: pre-activation ResNet -> avg pool -> residual MLP -> linear (mu, sigma_hat),
  sigma = softplus(sigma_hat) (the paper's exact form, no epsilon), z = mu + sigma * eps.
  `encode` returns mu.
* Prior N(0, I), not truncated. Adam betas (0, 0.999); separate G and E optimisers with
  E's learning rate 10x G's; D 2e-4, G 5e-5, E 5e-4 (BigGAN's D/G rates, E 10x G as in the
  paper); 2 D steps per E/G step; constant learning rates.
* G is evaluated with an exponential moving average of its weights: `decode` uses
  `G_ema` (a submodule, so it is checkpointed; `param_counts` counts `G` only).

Sizes (our scaled-down configs; `size="auto"` picks s16 / s32 / s64 by resolution). G and D
channels are ch x BigGAN's per-resolution multipliers (biggan_blocks.G_ARCH / D_ARCH):

| size | px         | G, D ch | attn  | H, J: width x res-blocks | E: widths x blocks; MLP width x res-blocks |
| tiny | 16, 32, 64 | 4       | res/2 | 32 x 1                   | (8, 16) x 1; 32 x 1                        |
| s16  | 16         | 4       | -     | 128 x 1                  | (8, 16, 32) x 1; 128 x 1                   |
| s32  | 32         | 32      | -     | 256 x 2                  | (64, 128, 256) x 1; 512 x 2                |
| m32  | 32         | 64      | -     | 512 x 2                  | (64, 128, 256, 512) x 2; 512 x 2           |
| s64  | 64         | 32      | 32    | 512 x 2                  | (64, 128, 256, 512) x 1; 512 x 2           |
| m64  | 64         | 48      | 32    | 1024 x 2                 | (64, 128, 256, 512) x 2; 1024 x 2          |

Readings of our own:
* Sizes: s16 and the 16-px G/D layouts go below BigGAN's smallest (32 px): two
  up-blocks (16, 16 -> 16, 8 channels at ch 4), a 4-block D with 2 downsamplings (8, 16, 16,
  16 channels), channels halved at full resolution as in BigGAN's 64-px pattern. It is
  sized for the CPU digits budget: its networks cost about what the shared DCGAN nets at
  width 32 cost per image, and one train_step (3 batches, 2 D steps) about 6x a BiGAN step.
  An MLP of width 512 is read as the paper's two residual blocks; TINY keeps one. The
  shared embedding has 128 dims (paper) except tiny (8). TINY's "attention at 16 px" of a
  32-px model is generalised to res/2.
* Hierarchical z: z is split into (number of up-blocks + 1) chunks as equal as possible, the
  larger first (32 into 3 -> 11, 11, 10); ajbrock instead truncates z_dim to a multiple.
* Schedule: each train_step takes 3 fresh real batches: one per D step and one for the
  E/G step (batches_per_step = 3); the E/G losses are computed after the last D update
  (fresh forward passes, not the stale ones of the D step). Real and generated pairs go
  through D in one concatenated call (BigGAN's G_D wrapper), so SN makes one power
  iteration per D call.
* EMA: decay 0.999 from step 1000 (section 6.3's values for a ~15k-step run; BigBiGAN itself
  used 0.9999). For budgets shorter than `ema_ref_steps` (15000) both the start step and the
  averaging window 1/(1-decay) are scaled by total_steps / ema_ref_steps (1500 steps: start
  100, decay 0.99; 30 steps: start 2, decay 0.5). Before the start G_ema is a copy of G.
  After each EMA update G_ema runs a no-grad forward on that step's z in train mode, so its
  BN running statistics (and SN vectors) are those of the EMA weights (a running form of
  BigGAN's "standing statistics"); evaluation uses them.
* Pixel range [-1, 1] as the paper. E's convs use PyTorch's default init (the paper does not
  say); E has BN and no SN. No "High Res E" (the harness feeds one resolution).
* A unary score left out by `unary` keeps its head in D, so the parameter counts do not change
  with the ablation; the head still runs (its scores are logged) but gets no loss. The paper
  does not say whether its ablated D dropped the head. Under data parallelism every D
  parameter must get a gradient, so the left-out scores enter D's loss times 0.
* `width` is ignored (BigBiGAN brings its own BigGAN networks) and `arch` has no effect: its
  only architecture is the paper's, at either value. 2-D points are refused (image model).
"""

import torch
import torch.nn.functional as F

from models.errors import ModelConfigError
# Absolute imports, so that `--plugin models/bigbigan.py` can load this file on its own.
from models.base import ADAM_BETAS_RENAMED, BidirectionalGAN, POSITIVE, UNIT, adam, frozen
from models.biggan_blocks import BigBiGANDiscriminator, BigBiGANEncoder, BigGANGenerator, z_chunks
from models.registry import register
from models.search import OPTIMISER_SPACE, LogUniform


SIZES = {
    "tiny": dict(res=(16, 32, 64), g_ch=4, d_ch=4, shared=8, attn="half", hj=(32, 1),
                 e_widths=(8, 16), e_blocks=1, mlp=(32, 1)),
    "s16": dict(res=(16,), g_ch=4, d_ch=4, shared=128, attn=None, hj=(128, 1),
                e_widths=(8, 16, 32), e_blocks=1, mlp=(128, 1)),
    "s32": dict(res=(32,), g_ch=32, d_ch=32, shared=128, attn=None, hj=(256, 2),
                e_widths=(64, 128, 256), e_blocks=1, mlp=(512, 2)),
    "m32": dict(res=(32,), g_ch=64, d_ch=64, shared=128, attn=None, hj=(512, 2),
                e_widths=(64, 128, 256, 512), e_blocks=2, mlp=(512, 2)),
    "s64": dict(res=(64,), g_ch=32, d_ch=32, shared=128, attn=32, hj=(512, 2),
                e_widths=(64, 128, 256, 512), e_blocks=1, mlp=(512, 2)),
    "m64": dict(res=(64,), g_ch=48, d_ch=48, shared=128, attn=32, hj=(1024, 2),
                e_widths=(64, 128, 256, 512), e_blocks=2, mlp=(1024, 2)),
    # Capacity-matched to the shared DCGAN nets the other rows use (the committed configs pick
    # these): E and G within 2x of the median of the other models' E and G at the config's
    # width. c16: G 64.5k, E 64.9k vs 67k/66k (digits, width 32); c32: G 187k, E 258k vs
    # 298k/296k (32 px, width 32); c64: G 3.5M, E 6.3M vs 3.8M/3.8M (64 px, width 64).
    # c32 tapers channels with resolution (G 8-4-2 -> 4-2-1 x ch, F 1-2-4-4 x ch), BigGAN's
    # 64/128-px pattern, instead of the flat 32-px (CIFAR) layout: at matched parameters the
    # flat layout costs 3.2e8 FLOPs per image through E, G and D, the tapered one 8.1e7.
    "c16": dict(res=(16,), g_ch=8, d_ch=8, shared=128, attn=None, hj=(128, 1),
                e_widths=(8, 16, 32), e_blocks=1, mlp=(128, 1)),
    "c32": dict(res=(32,), g_ch=12, d_ch=16, shared=128, attn=None, hj=(256, 1),
                e_widths=(16, 32, 64), e_blocks=1, mlp=(256, 1),
                g_layout=([8, 4, 2], [4, 2, 1]), d_layout=([1, 2, 4, 4], [True, True, False, False])),
    "c64": dict(res=(64,), g_ch=20, d_ch=32, shared=128, attn=32, hj=(512, 2),
                e_widths=(64, 128, 256, 512), e_blocks=1, mlp=(512, 2)),
}
AUTO_SIZE = {16: "s16", 32: "s32", 64: "s64"}


def resolve_size(size, data_shape):
    """The size config for `size` ("auto" or a name in SIZES) at this data shape."""
    data_shape = tuple(data_shape)
    if len(data_shape) == 1:
        raise ModelConfigError(f"bigbigan is an image model (BigGAN convolutional G, D and E); it cannot train on "
                          f"points of shape {data_shape}. Leave it out of the toy2d benchmark.")
    res = data_shape[-1]
    if len(data_shape) != 3 or data_shape[-2] != res or res not in AUTO_SIZE:
        raise ModelConfigError(f"bigbigan needs square 16, 32 or 64 px images (C, H, W); got {data_shape}.")
    name = AUTO_SIZE[res] if size == "auto" else size
    if name not in SIZES:
        raise ModelConfigError(f"bigbigan: unknown size {size!r}; use auto or one of {', '.join(SIZES)}.")
    if res not in SIZES[name]["res"]:
        ok = [k for k, v in SIZES.items() if res in v["res"]]
        raise ModelConfigError(f"bigbigan: size {name!r} is for {'/'.join(map(str, SIZES[name]['res']))} px images, "
                          f"the data are {res} px; at {res} px use auto or one of {', '.join(ok)}.")
    cfg = dict(SIZES[name], name=name)
    cfg["attn"] = res // 2 if cfg["attn"] == "half" else cfg["attn"]
    return cfg


# Which unary scores (s_x, s_z) enter the losses, by the `unary` option; s_xz always does.
UNARY = {"both": (True, True), "x": (True, False), "z": (False, True), "none": (False, False)}


def d_hinge_loss(real, fake):
    """D's loss from the scores: real = (s_x, s_z, s_xz) on (x, E(x)), fake = the same on
    (G(z), z), or the subset of them the `unary` option keeps. The paper's sum over the hinge
    terms."""
    return sum(F.relu(1 - s).mean() for s in real) + sum(F.relu(1 + s).mean() for s in fake)


def eg_loss(real, fake):
    """E's and G's loss (minimised by both): the unhinged real-pair minus fake-pair scores (all
    three, or those the `unary` option keeps)."""
    return sum(s.mean() for s in real) - sum(s.mean() for s in fake)


def ema_schedule(total_steps, decay, start, ref_steps):
    """(start step, decay) of the G EMA, scaled to short budgets (see the module docstring)."""
    if not ref_steps or total_steps >= ref_steps:
        return int(start), float(decay)
    f = total_steps / ref_steps
    window = f / (1 - decay) if decay < 1 else float("inf")
    return int(round(start * f)), (1 - 1 / window if window > 1 else 0.0)


@register("bigbigan")
class BigBiGAN(BidirectionalGAN):
    prior = "normal"
    option_ranges = {"lr_d": POSITIVE, "lr_g": POSITIVE, "lr_e_mult": POSITIVE, "adam_beta1": UNIT, "adam_beta2": UNIT,
                     "adam_eps": POSITIVE, "ema_decay": UNIT}
    renamed_options = ADAM_BETAS_RENAMED
    # No single `lr`: D's and G's rates are drawn apart over the shared space's range (BigGAN's
    # two-timescale rates differ 4x), with E's multiple of G's (10 in the paper, "higher E LR"
    # helped in its Table 1) from 1 to 30.
    search_space = {"lr_d": OPTIMISER_SPACE["lr"], "lr_g": OPTIMISER_SPACE["lr"],
                    "adam_beta1": OPTIMISER_SPACE["adam_beta1"], "lr_e_mult": LogUniform(1.0, 30.0)}
    batches_per_step = 3  # a fresh batch for each of the 2 D steps and for the E/G step
    capturable = True  # the same kernels every step of a phase (benchmarks/training/capture.py)
    d_steps_per_step = 2
    eval_networks = ("G_ema",)  # decode uses it; trained by EMA, not by an optimiser

    def __init__(self, *, data_shape, z_dim, width, total_steps, arch="shared", size="auto",
                 lr_d=2e-4, lr_g=5e-5, lr_e_mult=10.0, adam_beta1=0.0, adam_beta2=0.999, adam_eps=1e-8,
                 ema_decay=0.999, ema_start=1000, ema_ref_steps=15000, unary="both"):
        super().__init__(data_shape=data_shape, z_dim=z_dim)
        if unary not in UNARY:
            raise ModelConfigError(f"bigbigan: unary must be one of {', '.join(UNARY)} (the unary scores that enter "
                                   f"the losses beside s_xz), got {unary!r}.")
        self.unary = unary
        self.in_loss = (*UNARY[unary], True)  # for (s_x, s_z, s_xz)
        if arch not in ("shared", "paper"):
            raise ModelConfigError(f"bigbigan: arch must be 'shared' or 'paper' (both build the paper's networks), "
                              f"got {arch!r}.")
        cfg = resolve_size(size, data_shape)
        self.size = cfg["name"]
        del width  # accepted for the harness; BigBiGAN brings its own networks
        n_chunks = len((cfg.get("g_layout") or BigGANGenerator.arch(data_shape))[0]) + 1
        if z_dim < n_chunks:
            raise ModelConfigError(f"bigbigan at {data_shape[-1]} px splits z into {n_chunks} hierarchical chunks; "
                              f"z_dim must be at least {n_chunks}, got {z_dim}.")
        self.z_chunks = z_chunks(z_dim, n_chunks)

        def make_g():
            return BigGANGenerator(data_shape, z_dim, cfg["g_ch"], cfg["shared"], cfg["attn"], cfg.get("g_layout"))

        self.G = make_g()
        self.E = BigBiGANEncoder(data_shape, z_dim, cfg["e_widths"], cfg["e_blocks"], *cfg["mlp"])
        self.D = BigBiGANDiscriminator(data_shape, z_dim, cfg["d_ch"], *cfg["hj"], attn_res=cfg["attn"],
                                       f_layout=cfg.get("d_layout"))
        self.G_ema = make_g()  # outside self.G, so params_g counts G once
        self.G_ema.load_state_dict(self.G.state_dict())
        self.G_ema.requires_grad_(False)
        self.ema_start_step, self.ema_decay_eff = ema_schedule(int(total_steps), float(ema_decay), int(ema_start),
                                                               int(ema_ref_steps))

        lr_d, lr_g, lr_e_mult, adam_eps = float(lr_d), float(lr_g), float(lr_e_mult), float(adam_eps)
        betas = (float(adam_beta1), float(adam_beta2))
        self.optimizers = {
            "d": adam([self.D], lr_d, betas, eps=adam_eps),
            "g": adam([self.G], lr_g, betas, eps=adam_eps),
            "e": adam([self.E], lr_g * lr_e_mult, betas, eps=adam_eps),
        }

    # --- the interface ---------------------------------------------------------------
    def phase(self, step):
        """Before the EMA starts, G_ema copies G; from then on it averages: two phases, so that a
        captured step (--capture) replays the right EMA weight without a branch inside the graph."""
        return "ema-copy" if step < self.ema_start_step else "train"

    def encode(self, x):
        return self.E(x)[0]

    def decode(self, z):
        return self.G_ema(z)

    def sample_posterior(self, x):
        """z = mu + sigma * eps, the stochastic encoder's sample (used in training)."""
        mu, sigma = self.E(x)
        return mu + sigma * self.noise_like(mu)

    def scores(self, x_real, z_enc, x_gen, z_prior):
        """D on encoder pairs and generator pairs in one call -> (real, fake), each
        (s_x, s_z, s_xz) of shape (B,)."""
        n = x_real.shape[0]
        out = self.D(torch.cat([x_real, x_gen]), torch.cat([z_enc, z_prior]))
        return tuple(s[:n] for s in out), tuple(s[n:] for s in out)

    def kept(self, scores):
        """The scores of (s_x, s_z, s_xz) that enter the losses."""
        return tuple(s for s, keep in zip(scores, self.in_loss) if keep)

    def d_loss(self, real, fake):
        """D's hinge loss on the kept scores."""
        loss = d_hinge_loss(self.kept(real), self.kept(fake))
        left_out = [s for s, keep in zip(real + fake, self.in_loss * 2) if not keep]
        if left_out:
            # The left-out heads stay in D (parameter counts unchanged) but get no loss. Under
            # DistributedDataParallel (benchmarks/core/parallel.py, no find_unused_parameters) a
            # backward that reaches only some of D's parameters fails at the next forward, so a
            # zero-weighted term gives those heads a zero gradient: Adam then leaves them as they
            # are (zero moments), exactly as if they had no gradient at all.
            loss = loss + 0 * sum(s.sum() for s in left_out)
        return loss

    def train_step(self, batch, step):
        xs = batch.chunk(self.batches_per_step)
        b = xs[0].shape[0]
        opt_d = self.optimizers["d"]
        loss_d = 0.0  # a device tensor after the first step: read by the harness, never here
        for x in xs[:self.d_steps_per_step]:
            z = self.sample_latent(b)
            with torch.no_grad():
                x_gen, z_enc = self.G(z), self.sample_posterior(x)
            real, fake = self.scores(x, z_enc, x_gen, z)
            ld = self.d_loss(real, fake)
            opt_d.zero_grad(set_to_none=True)
            ld.backward()
            opt_d.step()
            loss_d = loss_d + ld.detach() / self.d_steps_per_step

        x = xs[-1]
        z = self.sample_latent(b)
        mu, sigma = self.E(x)
        z_enc = mu + sigma * self.noise_like(mu)
        with frozen(self.D):  # D is not updated here: no backward computes its gradients
            real, fake = self.scores(x, z_enc, self.G(z), z)
        # E/G's backward reaches no D parameter at all (D is frozen, and inputs=params below), and every
        # parameter of G and E still gets a gradient through s_xz, so leaving unary scores out needs no zero term.
        loss = eg_loss(self.kept(real), self.kept(fake))
        opts = (self.optimizers["g"], self.optimizers["e"])
        params = [p for o in opts for g in o.param_groups for p in g["params"]]
        for o in opts:
            o.zero_grad(set_to_none=True)
        loss.backward(inputs=params)  # D gets no gradient
        for o in opts:
            o.step()
        self.update_ema(z, step)

        out = {"loss_d": loss_d, "loss_eg": loss.detach(), "sigma": sigma.mean().detach(),
               "mu_std": mu.std(0).mean().detach()}
        for name, r, f in zip(("sx", "sz", "sxz"), real, fake):
            out[f"{name}_real"], out[f"{name}_fake"] = r.mean().detach(), f.mean().detach()
        return out

    @torch.no_grad()
    def update_ema(self, z, step):
        """G_ema <- decay * G_ema + (1 - decay) * G (a copy before the start step), then one
        train-mode forward of G_ema on z to refresh its BN running statistics (buffers are not
        averaged: G_ema's own forward passes set them).

        One multi-tensor lerp over every parameter rather than a kernel per parameter. Before the
        start the weight is 1, which copies exactly: lerp computes end - (end - start) * (1 - weight)
        for weights of 1/2 and more."""
        weight = 1.0 if step < self.ema_start_step else 1.0 - self.ema_decay_eff
        torch._foreach_lerp_(list(self.G_ema.parameters()), list(self.G.parameters()), weight)
        was_training = self.G_ema.training
        self.G_ema.train()
        self.G_ema(z)
        self.G_ema.train(was_training)
