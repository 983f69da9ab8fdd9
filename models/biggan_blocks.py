"""BigGAN-style building blocks for the scaled-down BigBiGAN (models/bigbigan.py).

Follows ajbrock/BigGAN-PyTorch (BigGAN.py, layers.py):

* spectral norm (1 power iteration) on every conv / linear of G and D, orthogonal init;
  G's shared (here: single) class embedding has no SN;
* G: hierarchical z; chunk 0 -> SNLinear -> 4x4xC0; chunk k (+ the shared embedding) ->
  the conditional-BN gain/bias maps of up-block k (gain = 1 + W_g[z_k; e], bias = W_b[z_k; e],
  BN without affine, eps 1e-4); GBlock = CBN-ReLU-up2-conv3-CBN-ReLU-conv3 + up2-conv1
  shortcut; output BN-ReLU-SNconv3-tanh; SAGAN self-attention after the block of the given
  resolution;
* F (the x-path of D): "wide" DBlocks, ReLU before every block but the first, avgpool2
  downsampling, a learnable 1x1 shortcut; ReLU and global *sum* pooling at the end;
* H / J: residual MLPs with SN (linear in, k blocks of ReLU-SNLinear-ReLU-SNLinear + skip);
* E: pre-activation ResNet (BN, no SN) -> global average pool -> residual MLP -> linear
  to (mu, sigma_hat).

The hierarchical z split and the stochastic encoder head live here too; the loss, schedule
and EMA are in models/bigbigan.py.
"""
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

SN_EPS = 1e-4  # BigBiGAN's released G config: SN_eps=1e-4, BN_eps=1e-4
BN_EPS = 1e-4


def sn(module):
    """Orthogonal init, then spectral norm with one power iteration per training forward."""
    nn.init.orthogonal_(module.weight)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return spectral_norm(module, n_power_iterations=1, eps=SN_EPS)


def sn_conv(cin, cout, k=3, bias=True):
    return sn(nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias))


def sn_linear(cin, cout, bias=True):
    return sn(nn.Linear(cin, cout, bias=bias))


def z_chunks(z_dim, n):
    """Sizes of n hierarchical z chunks as equal as possible, the larger ones first
    (torch.tensor_split's rule): 32 into 3 -> [11, 11, 10]. ajbrock instead truncates z_dim
    to a multiple of n; we cannot, the harness fixes z_dim."""
    q, r = divmod(z_dim, n)
    return [q + 1] * r + [q] * (n - r)


class Attention(nn.Module):
    """SAGAN self-attention: theta, phi -> C/8; g -> C/2; phi and g max-pooled 2x2;
    x + gamma * o(g softmax(theta^T phi)), gamma initialised to 0."""

    def __init__(self, ch):
        super().__init__()
        self.theta = sn_conv(ch, max(1, ch // 8), 1, bias=False)
        self.phi = sn_conv(ch, max(1, ch // 8), 1, bias=False)
        self.g = sn_conv(ch, max(1, ch // 2), 1, bias=False)
        self.o = sn_conv(max(1, ch // 2), ch, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        b, c, h, w = x.shape
        theta = self.theta(x).flatten(2)
        phi = F.max_pool2d(self.phi(x), 2).flatten(2)
        g = F.max_pool2d(self.g(x), 2).flatten(2)
        beta = torch.softmax(theta.transpose(1, 2) @ phi, -1)  # (B, HW, HW/4)
        o = self.o((g @ beta.transpose(1, 2)).view(b, -1, h, w))
        return x + self.gamma * o


class CBN(nn.Module):
    """Conditional BN: batch-normalised x (no affine) times 1 + W_g y, plus W_b y."""

    def __init__(self, ch, cond_dim):
        super().__init__()
        self.bn = nn.BatchNorm2d(ch, affine=False, eps=BN_EPS)
        self.gain = sn_linear(cond_dim, ch, bias=False)
        self.bias = sn_linear(cond_dim, ch, bias=False)

    def forward(self, x, y):
        return self.bn(x) * (1 + self.gain(y))[:, :, None, None] + self.bias(y)[:, :, None, None]


class GBlock(nn.Module):
    def __init__(self, cin, cout, cond_dim):
        super().__init__()
        self.bn1, self.bn2 = CBN(cin, cond_dim), CBN(cout, cond_dim)
        self.conv1, self.conv2 = sn_conv(cin, cout), sn_conv(cout, cout)
        self.sc = sn_conv(cin, cout, 1)

    def forward(self, x, y):
        h = F.interpolate(F.relu(self.bn1(x, y)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), y)))
        return h + self.sc(F.interpolate(x, scale_factor=2, mode="nearest"))


# (in multipliers, out multipliers) of the up-blocks, from 4x4 up to the resolution.
# 32 and 64 are ajbrock's G_arch. 16 px is ours: two up-blocks, and (as in the 64-px
# pattern) half the channels at full resolution, where 3x3 convs cost the most on a CPU.
G_ARCH = {16: ([4, 4], [4, 2]), 32: ([4, 4, 4], [4, 4, 4]), 64: ([16, 16, 8, 4], [16, 8, 4, 2])}
# (out multipliers, downsample flags) of the D blocks. 16 px is ours: the 32-px layout
# (4 blocks, 2 downsampling) with the first block at half width, like G.
D_ARCH = {16: ([2, 4, 4, 4], [True, True, False, False]), 32: ([4, 4, 4, 4], [True, True, False, False]),
          64: ([1, 2, 4, 8, 16], [True, True, True, True, False])}


class BigGANGenerator(nn.Module):
    """Unconditional BigGAN G: one learned class embedding (the "single label" setup) shared
    by every conditional BN, hierarchical z."""

    def __init__(self, data_shape, z_dim, ch, shared_dim, attn_res=None, layout=None):
        super().__init__()
        channels = data_shape[0]
        ins, outs = layout or self.arch(data_shape)
        self.chunks = z_chunks(z_dim, len(ins) + 1)
        self.c0 = ins[0] * ch
        self.embed = nn.Parameter(torch.empty(1, shared_dim))  # one class; no SN, as in BigGAN
        nn.init.orthogonal_(self.embed)
        self.linear = sn_linear(self.chunks[0], self.c0 * 16)
        self.blocks = nn.ModuleList()
        self.attn = nn.ModuleDict()
        r = 4
        for i, (a, b) in enumerate(zip(ins, outs)):
            self.blocks.append(GBlock(a * ch, b * ch, self.chunks[i + 1] + shared_dim))
            r *= 2
            if r == attn_res:
                self.attn[str(i)] = Attention(b * ch)
        self.out_bn = nn.BatchNorm2d(outs[-1] * ch, eps=BN_EPS)  # unconditional, with gain and bias
        self.out_conv = sn_conv(outs[-1] * ch, channels)

    @staticmethod
    def arch(data_shape):
        """(in, out) channel multipliers of the up-blocks at this resolution."""
        return G_ARCH[data_shape[-1]]

    def forward(self, z):
        zs = torch.split(z, self.chunks, 1)
        e = self.embed.expand(z.shape[0], -1)
        h = self.linear(zs[0]).view(z.shape[0], self.c0, 4, 4)
        for i, block in enumerate(self.blocks):
            h = block(h, torch.cat([zs[i + 1], e], 1))
            if str(i) in self.attn:
                h = self.attn[str(i)](h)
        return torch.tanh(self.out_conv(F.relu(self.out_bn(h))))


class DBlock(nn.Module):
    def __init__(self, cin, cout, down, preact):
        super().__init__()
        self.conv1, self.conv2 = sn_conv(cin, cout), sn_conv(cout, cout)
        self.down, self.preact = down, preact
        self.sc = sn_conv(cin, cout, 1) if (cin != cout or down) else None

    def forward(self, x):
        h = F.relu(x) if self.preact else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.sc is not None:
            if self.preact:  # conv, then pool
                s = self.sc(s)
                s = F.avg_pool2d(s, 2) if self.down else s
            else:  # first block: pool, then conv
                s = self.sc(F.avg_pool2d(s, 2) if self.down else s)
        return h + s


class FNet(nn.Module):
    """F: the BigGAN D trunk on x -> ReLU -> global sum pool -> (B, out_dim)."""

    def __init__(self, data_shape, ch, attn_res=None, layout=None):
        super().__init__()
        res = data_shape[-1]
        outs, downs = layout or D_ARCH[res]
        self.blocks, self.attn = nn.ModuleList(), nn.ModuleDict()
        cin, r = data_shape[0], res
        for i, (m, down) in enumerate(zip(outs, downs)):
            self.blocks.append(DBlock(cin, m * ch, down, preact=i > 0))
            cin, r = m * ch, r // 2 if down else r
            if r == attn_res and len(self.attn) == 0:
                self.attn[str(i)] = Attention(cin)
        self.out_dim = cin

    def forward(self, x):
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if str(i) in self.attn:
                h = self.attn[str(i)](h)
        return F.relu(h).sum((2, 3))


class ResMLP(nn.Module):
    """SNLinear(in -> width), then `blocks` residual blocks ReLU-Linear-ReLU-Linear (+ skip),
    then ReLU. `linear=sn_linear` in D (H, J); plain nn.Linear in E."""

    def __init__(self, in_dim, width, blocks, linear=sn_linear):
        super().__init__()
        self.inp = linear(in_dim, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.ReLU(), linear(width, width), nn.ReLU(), linear(width, width))
                                    for _ in range(blocks))
        self.out_dim = width

    def forward(self, x):
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return F.relu(h)


class BigBiGANDiscriminator(nn.Module):
    """BigBiGAN's D: F on x, H on z, J on [F(x), H(z)]; returns (s_x, s_z, s_xz), each (B,)."""

    def __init__(self, data_shape, z_dim, ch, hj_width, hj_blocks, attn_res=None, f_layout=None):
        super().__init__()
        self.F = FNet(data_shape, ch, attn_res, f_layout)
        self.H = ResMLP(z_dim, hj_width, hj_blocks)
        self.J = ResMLP(self.F.out_dim + hj_width, hj_width, hj_blocks)
        self.head_x = sn_linear(self.F.out_dim, 1)
        self.head_z = sn_linear(hj_width, 1)
        self.head_xz = sn_linear(hj_width, 1)

    def forward(self, x, z):
        fx, hz = self.F(x), self.H(z)
        s_xz = self.head_xz(self.J(torch.cat([fx, hz], 1)))
        return self.head_x(fx).squeeze(1), self.head_z(hz).squeeze(1), s_xz.squeeze(1)


class PreActBlock(nn.Module):
    """ResNet-v2 basic block: BN-ReLU-conv3(stride)-BN-ReLU-conv3, 1x1 (stride) shortcut
    on a shape change (taken from the pre-activated input, as in ResNet-v2)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.sc = nn.Conv2d(cin, cout, 1, stride, bias=False) if (cin != cout or stride > 1) else None

    def forward(self, x):
        a = F.relu(self.bn1(x))
        h = self.conv2(F.relu(self.bn2(self.conv1(a))))
        return h + (self.sc(a) if self.sc is not None else x)


class BigBiGANEncoder(nn.Module):
    """E: pre-activation ResNet (stem conv3 at full resolution; stage i>0 halves it), final
    BN-ReLU, global average pool, residual MLP, linear to (mu, sigma_hat); sigma =
    softplus(sigma_hat) exactly as the paper states (no epsilon, no KL)."""

    def __init__(self, data_shape, z_dim, widths, blocks, mlp_width, mlp_blocks):
        super().__init__()
        self.z_dim = z_dim
        layers = [nn.Conv2d(data_shape[0], widths[0], 3, 1, 1, bias=False)]
        cin = widths[0]
        for i, w in enumerate(widths):
            for j in range(blocks):
                layers.append(PreActBlock(cin, w, 2 if (i > 0 and j == 0) else 1))
                cin = w
        layers += [nn.BatchNorm2d(cin), nn.ReLU()]
        self.trunk = nn.Sequential(*layers)
        self.feat_dim = cin
        self.mlp = ResMLP(cin, mlp_width, mlp_blocks, linear=nn.Linear)
        self.head = nn.Linear(mlp_width, 2 * z_dim)

    def pooled_features(self, x):
        """The average-pooled trunk feature (the paper's "AvePool" representation)."""
        return self.trunk(x).mean((2, 3))

    def forward(self, x):
        """-> (mu, sigma), each (B, z_dim)."""
        mu, s = self.head(self.mlp(self.pooled_features(x))).chunk(2, 1)
        return mu, F.softplus(s)
