"""ALI (Dumoulin, Belghazi, Poole, Mastropietro, Lamb, Arjovsky & Courville, "Adversarially
Learned Inference", ICLR 2017).

Faithful to the released Theano/Blocks code (IshmaelBelghazi/ALI, `ali/bricks.py`,
`ali/algorithms.py`, `experiments/ali_{svhn,celeba}.py`), on the shared blocks by default:

* Stochastic Gaussian encoder: E outputs 2*z_dim numbers, split into (mu, log sigma);
  z_hat = mu + exp(log sigma) * eps, eps ~ N(0, I). No KL term, no clamp on log sigma.
  `encode` returns mu (the features ALI uses downstream). The encoder's output layer has a bias.
* D(x, z) has three parts (`ALIDiscriminator`): an x-path (convnet -> feature), a z-path
  (two bias-free 1x1 convs = linear layers, each followed by LeakyReLU) and a joint path on the
  concatenation [x-feature, z-feature] (two linear layers with LeakyReLU, then one to a single
  logit; all with biases). Dropout p=0.2 on the INPUT of every layer of all three paths: the
  raw image, the raw z, every hidden input and the input of the final 1-unit layer (the
  released graph replacement; maintainer's answer in IshmaelBelghazi/ALI#8). Dropout is only
  active in training mode.
* Real pairs (x, z_hat) and fake pairs (x_tilde, z) go through D as ONE concatenated batch,
  real first, fake second, split after, so D's BN statistics are shared (`get_predictions`).
* Losses, softplus form, no 0.5 factor (about 2 log 2 = 1.386 at init):
  d_loss  = mean softplus(-D(x, z_hat)) + mean softplus(D(x_tilde, z));
  ge_loss = mean softplus(D(x, z_hat)) + mean softplus(-D(x_tilde, z)) (label-swapped).
* Simultaneous update: both gradients at the same parameters (`ali_algorithm`), D with its own
  Adam and G, E with one Adam over G and E together. The released code reads both from one
  forward pass; here each comes from a pass of its own over the same batch with the same
  dropout masks (drawn before D runs, `dropout_masks`), so the same logits, and a compiled D
  computes its weight gradients once (models/base.py `frozen`).
* N(0, I) prior. Adam lr 1e-4, betas (0.5, 0.999), eps 1e-8 (Blocks' Adam; option adam_eps); constant LR.
  Weights N(0, 0.01), biases 0.

`arch: paper` builds the released nets exactly (`ALIEncoder`, `ALIGenerator`, and `ALIXPath` as the
x-path of `ALIDiscriminator`; the paper's Appendix A tables, as the released experiment files build
them): at 64x64 the CelebA table (`ali_celeba.py`: LeakyReLU 0.02 in E, G and D, D(z) 2 x 1024,
joint 2 x 2048), at 32x32 the SVHN table (`ali_svhn.py`: LeakyReLU 0.01 = Blocks' default,
D(z) 2 x 512, joint 2 x 1024). All convs 'valid' (no padding), E and G convs bias-free and followed
by BN, the first D(x) conv with a bias and no BN, BN with eps 1e-4 and running-average momentum
0.05 (`p <- 0.95 p + 0.05 m`), the encoder ending in a 1x1 conv to 2*z_dim at 1x1, the decoder
ending in a 1x1 conv without a bias plus an untied (per-pixel) bias, then the logistic output.
`width` is ignored there; z_dim is the configured one (ALI used 256). On 2-D points `arch: paper`
builds the mixture experiment's nets (`experiments/ali_mixture.py`, models/mixture_blocks.py):
G 4 x 400 with BN and ReLU, the change-of-variables encoder E(x, eps), a maxout D on [x, z] without BN
or dropout; the toy2d-ali config sets that script's Adam (lr 1e-4, adam_beta1 0.8) and N(0, 0.02)
init. `encode` there is E(x, eps=0). `random_hparams: true` draws lr, adam_beta1 and the init std
per run from the seed (the paper's ten random runs; `mixture_blocks.draw_hparams`), recorded as
`drawn` in metrics.json. Other resolutions raise a ModelConfigError.

Readings of our own:
* Pixel range: ALI trains on [0, 1] with a sigmoid output; the harness feeds [-1, 1]. The paper
  G outputs 2*sigmoid(a) - 1, the affine image of ALI's sigmoid in our range. The shared G keeps
  its tanh (= 2*sigmoid(2a) - 1), so all methods share one G.
* Decoder output bias initialised to the pixel log-odds (`get_log_odds` on 500 training images):
  with `arch: paper` it is set from the first training batch, per pixel, log(m / (1 - m)) with
  m the batch mean of (x + 1) / 2 clipped to [1e-7, 1 - 1e-7] (in our range that is exactly the
  bias that makes the initial output the mean image); a persistent flag in the state dict makes
  it happen once, also across resumes (`logodds_init=False` leaves it at 0). The shared G has a
  tied, per-channel bias under a tanh; it stays at 0 (= log-odds of a mean pixel of 0.5), like
  every other method's G.
* Shared D: the x-path is the shared `Trunk` (4x4 stride-2 convs to a 4x4 map, BN after the
  first layer, LeakyReLU 0.2, conv biases) with dropout on each conv's input, flattened
  (16 * C features for C final channels). ALI's x-path ends at 1x1 with C = 512 channels and
  sizes D(z) = 2C and joint = 4C at CelebA (1024 / 2048) and 1C / 2C at SVHN (512 / 1024).
  We size D(z) = `z_path_mult` * C and joint = `joint_mult` * C with defaults 2 and 4 (CelebA's
  ratios): at celeba64 (width 64, C = 512) that is exactly ALI's 1024 / 2048; at fashion-mnist
  (32 px, width 64, C = 256) exactly SVHN's 512 / 1024; at digits (16 px, width 32, C = 64)
  128 / 256; for 2-D points (C = width) 2*width / 4*width.
* LeakyReLU slope: the shared Trunk's 0.2, also in the shared D's z and joint paths (ALI used
  0.01 on SVHN, 0.02 on CelebA, 0.1 on CIFAR-10; `arch: paper` uses the table's slope).
* BN in the shared nets keeps PyTorch's defaults (eps 1e-5, momentum 0.1), as for every method;
  `arch: paper` uses Blocks' values. BN uses running statistics at evaluation.
* The shared E is `Encoder(data_shape, 2 * z_dim, width)` (linear head with bias), mu first.
"""
import torch
import torch.nn.functional as F
from torch import nn

from models.errors import ModelConfigError

from models.base import ADAM, ADAM_BETAS_RENAMED, BidirectionalGAN, POSITIVE, UNIT, adam, frozen, simultaneous_step
from models.blocks import Encoder, Generator, Trunk, init_normal
from models.mixture_blocks import COVEncoder, MaxoutDiscriminator, MixtureGenerator, draw_hparams
from models.registry import register
from models.search import OPTIMISER_SPACE, Uniform


def d_loss(data, sample):
    """D's loss from its logits on data pairs (x, z_hat) and sample pairs (x_tilde, z), softplus
    form without a 1/2: mean softplus(-data) + mean softplus(sample)."""
    return F.softplus(-data).mean() + F.softplus(sample).mean()


def ge_loss(data, sample):
    """What G and E minimise together: D's loss with the labels swapped,
    mean softplus(data) + mean softplus(-sample)."""
    return F.softplus(data).mean() + F.softplus(-sample).mean()


def _drop(p):
    return nn.Dropout(p) if p > 0 else nn.Identity()


def _masked(seq, h, masks):
    """`seq` applied to h with each Dropout's mask taken from `masks`, in order."""
    masks = iter(masks)
    for m in seq:
        h = h * next(masks) if isinstance(m, nn.Dropout) else m(h)
    return h


class ALIDiscriminator(nn.Module):
    """D(x, z) -> logit (B,): x-path feature and z-path feature, concatenated, joint MLP.

    `x_path` maps x to a flat feature of size `x_dim` and applies its own input dropout; the
    z-path is two bias-free linear layers, the joint path two linear layers and a 1-unit output
    (with biases); dropout `dropout` on the input of each of those five layers."""

    def __init__(self, x_path, x_dim, z_dim, z_width, joint_width, *, slope, dropout):
        super().__init__()
        self.x_path = x_path
        act = nn.LeakyReLU(slope)
        self.z_path = nn.Sequential(
            _drop(dropout), nn.Linear(z_dim, z_width, bias=False), act,
            _drop(dropout), nn.Linear(z_width, z_width, bias=False), act)
        self.joint = nn.Sequential(
            _drop(dropout), nn.Linear(x_dim + z_width, joint_width), act,
            _drop(dropout), nn.Linear(joint_width, joint_width), act,
            _drop(dropout), nn.Linear(joint_width, 1))

    def forward(self, x, z, masks=None):
        """`masks`: one dropout mask per dropout site, in the order the sites run (x-path, z-path,
        joint; `dropout_shapes`), applied instead of dropout's own draws, so that two passes can
        share them; None: dropout draws its own."""
        if masks is None:
            return self.joint(torch.cat([self.x_path(x), self.z_path(z)], 1)).squeeze(1)
        k = len(masks) - 5  # the z-path's 2 sites and the joint path's 3 come after the x-path's
        h = torch.cat([self.x_path(x, masks=masks[:k]), _masked(self.z_path, z, masks[k:k + 2])], 1)
        return _masked(self.joint, h, masks[k + 2:]).squeeze(1)

    @torch.no_grad()
    def dropout_shapes(self, data_shape, z_dim):
        """The per-example input shape of every dropout site, in the order the sites run: a dry run
        in eval mode, which draws nothing and leaves the running averages alone."""
        shapes, was_training = [], self.training
        hooks = [m.register_forward_pre_hook(lambda mod, args: shapes.append(tuple(args[0].shape[1:])))
                 for m in self.modules() if isinstance(m, nn.Dropout)]
        self.eval()
        try:
            self(torch.zeros(1, *data_shape), torch.zeros(1, z_dim))
        finally:
            self.train(was_training)
            for h in hooks:
                h.remove()
        return shapes


# --- arch: paper, the released tables (the paper's Appendix A) ----------------------------
# (kernel, stride, channels) per conv; all 'valid'.
PAPER_TABLES = {
    64: dict(  # experiments/ali_celeba.py
        slope=0.02,
        enc=[(2, 1, 64), (7, 2, 128), (5, 2, 256), (7, 2, 256), (4, 1, 512)],
        dec=[(4, 1, 512), (7, 2, 256), (5, 2, 256), (7, 2, 128), (2, 1, 64)],
        dx=[(2, 1, 64), (7, 2, 128), (5, 2, 256), (7, 2, 256), (4, 1, 512)],
        dz=1024, joint=2048),
    32: dict(  # experiments/ali_svhn.py
        slope=0.01,
        enc=[(5, 1, 32), (4, 2, 64), (4, 1, 128), (4, 2, 256), (4, 1, 512), (1, 1, 512)],
        dec=[(4, 1, 256), (4, 2, 128), (4, 1, 64), (4, 2, 32), (5, 1, 32), (1, 1, 32)],
        dx=[(5, 1, 32), (4, 2, 64), (4, 1, 128), (4, 2, 256), (4, 1, 512)],
        dz=512, joint=1024),
}


def _paper_bn(ch):
    return nn.BatchNorm2d(ch, eps=1e-4, momentum=0.05)  # Blocks: eps 1e-4, p <- 0.95 p + 0.05 m


class ALIEncoder(nn.Module):
    """Gz(x): bias-free valid convs + BN + LeakyReLU down to 1x1, then a 1x1 conv (with bias)
    to out_dim = 2 * z_dim. Returns (B, out_dim), mu first."""

    def __init__(self, channels, out_dim, table):
        super().__init__()
        layers, cin = [], channels
        for k, s, c in table["enc"]:
            layers += [nn.Conv2d(cin, c, k, s, bias=False), _paper_bn(c), nn.LeakyReLU(table["slope"])]
            cin = c
        layers.append(nn.Conv2d(cin, out_dim, 1))  # untied bias at 1x1 = an ordinary bias
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).flatten(1)


class ALIGenerator(nn.Module):
    """Gx(z): z as (z_dim, 1, 1), bias-free valid transposed convs + BN + LeakyReLU, a bias-free
    1x1 conv to the image channels plus an untied per-pixel bias, then 2 * sigmoid - 1."""

    def __init__(self, z_dim, channels, res, table):
        super().__init__()
        layers, cin = [], z_dim
        for k, s, c in table["dec"]:
            layers += [nn.ConvTranspose2d(cin, c, k, s, bias=False), _paper_bn(c), nn.LeakyReLU(table["slope"])]
            cin = c
        layers.append(nn.Conv2d(cin, channels, 1, bias=False))
        self.net = nn.Sequential(*layers)
        self.out_bias = nn.Parameter(torch.zeros(channels, res, res))

    def forward(self, z):
        return 2 * torch.sigmoid(self.net(z[:, :, None, None]) + self.out_bias) - 1


class ALIXPath(nn.Module):
    """D(x): dropout before every valid conv; the first conv has a bias and no BN, the others
    are bias-free with BN; LeakyReLU after each. Returns the flat (B, C) feature at 1x1."""

    def __init__(self, channels, table, dropout):
        super().__init__()
        layers, cin = [], channels
        for i, (k, s, c) in enumerate(table["dx"]):
            layers += [_drop(dropout), nn.Conv2d(cin, c, k, s, bias=i == 0)]
            layers += [nn.Identity() if i == 0 else _paper_bn(c), nn.LeakyReLU(table["slope"])]
            cin = c
        self.net = nn.Sequential(*layers)
        self.out_dim = cin

    def forward(self, x, masks=None):
        return (self.net(x) if masks is None else _masked(self.net, x, masks)).flatten(1)


@register("ali")
class ALI(BidirectionalGAN):
    prior = "normal"
    option_ranges = {**ADAM, "adam_eps": POSITIVE, "dropout": UNIT}
    # Adam's epsilon was `eps` here alone; every model spells Adam's settings adam_*
    renamed_options = {**ADAM_BETAS_RENAMED, "eps": "adam_eps"}
    # D's input dropout (0.2 in the paper) is ALI's regulariser of the joint discriminator: from
    # none to half the inputs, beside the shared learning rate and beta1.
    search_space = {**OPTIMISER_SPACE, "dropout": Uniform(0.0, 0.5)}
    batches_per_step = 1
    capturable = True  # the same kernels every step of a phase (benchmarks/training/capture.py)
    d_steps_per_step = 1
    # the shared D keeps the published design's z-path and joint MLP (module docstring), which
    # BiGAN's D, adding z into the x-path's layers, does not have: 9-16x BiGAN's D on the committed configs
    capacity_by_design = {"params_d": "ALI's published D(x, z): a z-path and a joint MLP beside the x-path "
                                      "(2 x 2C and 2 x 4C wide for C x-path channels, CelebA's ratios)"}

    def __init__(self, *, data_shape, z_dim, width, total_steps, arch="shared", lr=1e-4,
                 adam_beta1=0.5, adam_beta2=0.999, adam_eps=1e-8, init_std=0.01, dropout=0.2, z_path_mult=2,
                 joint_mult=4, logodds_init=True, random_hparams=False):
        super().__init__(data_shape=data_shape, z_dim=z_dim)
        self.drawn, lr, adam_beta1, init_std = draw_hparams(random_hparams, lr, adam_beta1, init_std)
        self._cov = arch == "paper" and len(data_shape) == 1
        if self._cov:  # the 2-D mixture experiment's nets
            self.G = MixtureGenerator(z_dim, data_shape[0])
            self.E = COVEncoder(data_shape[0], z_dim)
            self.D = MaxoutDiscriminator(data_shape[0] + z_dim)
        elif arch == "paper":
            res = data_shape[-1] if len(data_shape) == 3 and data_shape[-2] == data_shape[-1] else None
            if res not in PAPER_TABLES:
                raise ModelConfigError(
                    f"ali: arch 'paper' has the released CelebA 64x64 and SVHN 32x32 architectures; the data are "
                    f"{tuple(data_shape)}. Use arch.style=shared for images of other sizes (on 2-D points 'paper' "
                    "is ALI's mixture nets).")
            table = PAPER_TABLES[res]
            self.G = ALIGenerator(z_dim, data_shape[0], res, table)
            self.E = ALIEncoder(data_shape[0], 2 * z_dim, table)
            x_path = ALIXPath(data_shape[0], table, dropout)
            self.D = ALIDiscriminator(x_path, x_path.out_dim, z_dim, table["dz"], table["joint"],
                                      slope=table["slope"], dropout=dropout)
        elif arch == "shared":
            self.G = Generator(data_shape, z_dim, width)
            self.E = Encoder(data_shape, 2 * z_dim, width)
            x_path = Trunk(data_shape, width, dropout=dropout)
            c = x_path.feature_channels
            self.D = ALIDiscriminator(x_path, x_path.out_dim, z_dim, z_path_mult * c, joint_mult * c,
                                      slope=0.2, dropout=dropout)
        else:
            raise ModelConfigError(f"ali: arch must be 'shared' or 'paper', got {arch!r}")
        for net in (self.G, self.E, self.D):
            init_normal(net, init_std)
        self.dropout = float(dropout)
        self._mask_shapes = self.D.dropout_shapes(data_shape, z_dim) if isinstance(self.D, ALIDiscriminator) else []
        # Pending data-dependent init of the paper G's per-pixel output bias (saved in checkpoints).
        self._paper = arch == "paper" and not self._cov
        self.register_buffer("logodds_pending", torch.tensor(self._paper and bool(logodds_init)))
        betas = (adam_beta1, adam_beta2)
        self.optimizers = {
            "d": adam([self.D], lr, betas, eps=adam_eps),
            "ge": adam([self.G, self.E], lr, betas, eps=adam_eps),
        }

    def posterior(self, x):
        """(mu, log sigma) of q(z | x)."""
        mu, log_sigma = self.E(x).chunk(2, dim=1)
        return mu, log_sigma

    def sample_posterior(self, x):
        """The reparameterised draw z_hat = mu + exp(log sigma) * eps used in training; also
        returns sigma for logging (None for the change-of-variables encoder, which draws its own
        noise)."""
        if self._cov:
            return self.E(x), None
        mu, log_sigma = self.posterior(x)
        sigma = torch.exp(log_sigma)
        return mu + sigma * self.noise_like(mu), sigma

    def encode(self, x):
        return self.E(x, eps=0.0) if self._cov else self.posterior(x)[0]

    @torch.no_grad()
    def _init_output_bias(self, x):
        m = ((x + 1) / 2).mean(0)
        if self.shard[1] > 1:  # data-parallel: the mean over the global batch, the same on every process
            torch.distributed.all_reduce(m)
            m /= self.shard[1]
        m = m.clamp(1e-7, 1 - 1e-7)
        self.G.out_bias.copy_(torch.log(m / (1 - m)))
        self.logodds_pending.fill_(False)

    def dropout_masks(self, n):
        """D's dropout masks for a pass over n pairs, drawn as dropout draws them (keep with
        probability 1 - p, scaled by 1 / (1 - p); on a CPU the same numbers), site by site in the
        order D runs them; None when D has no dropout."""
        if not self._mask_shapes:
            return None
        keep = 1.0 - self.dropout
        return [torch.empty(n, *shape, device=self.device).bernoulli_(keep).div_(keep) for shape in self._mask_shapes]

    def train_step(self, batch, step):
        x = batch
        if self._paper and self.logodds_pending:
            self._init_output_bias(x)
        n = x.shape[0]
        z = self.sample_latent(n)
        z_hat, sigma = self.sample_posterior(x)
        x_tilde = self.G(z)
        # Both players' gradients at the same parameters, real and fake in one D pass (shared BN
        # statistics). Eager autograd differentiates each loss only back to what its backward asks
        # for, so one pass serves both losses. A compiled D's backward computes every weight
        # gradient, so there each loss gets a pass of its own with the same dropout masks: D's on
        # detached pairs, G's and E's through a frozen D (models/base.py `frozen`), the second
        # computing the same logits and leaving D's running averages to the first.
        masks = self.dropout_masks(2 * n)
        kw = {} if masks is None else {"masks": masks}
        if "D" in self.compiled_networks:
            logits = self.D(torch.cat([x, x_tilde.detach()]), torch.cat([z_hat.detach(), z]), **kw)
            with frozen(self.D, running_stats=False):
                logits_ge = self.D(torch.cat([x, x_tilde]), torch.cat([z_hat, z]), **kw)
        else:
            logits_ge = logits = self.D(torch.cat([x, x_tilde]), torch.cat([z_hat, z]), **kw)
        data, sample = logits[:n], logits[n:]
        loss_d, loss_ge = d_loss(data, sample), ge_loss(logits_ge[:n], logits_ge[n:])
        simultaneous_step((loss_d, self.optimizers["d"]), (loss_ge, self.optimizers["ge"]))
        out = {"loss_d": loss_d.detach(), "loss_ge": loss_ge.detach(),
               "d_real": torch.sigmoid(data).mean().detach(), "d_fake": torch.sigmoid(sample).mean().detach()}
        if sigma is not None:
            out["sigma"] = sigma.mean().detach()
        return out
