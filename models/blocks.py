"""Shared network blocks: one DCGAN-style family sized by resolution, one MLP family for 2-D points.

Every model in the benchmark builds G, E and the x-path of D from these, so that at a given
resolution only what defines a method differs (loss, encoder head, how z enters D, schedule).

Conv family (resolution R in 16/32/64): 4x4 stride-2 convs halve the image down to 4x4, channels
width * 2**i; BN after every layer but the first; LeakyReLU(0.2) in E and D, ReLU in G; tanh output.
R=16 has 2 stages, 32 has 3, 64 has 4. Points (shape (2,)) use an MLP of the same depth pattern.
"""
import math

from torch import nn


def n_stages(data_shape):
    """Number of stride-2 stages (conv) or hidden layers (MLP) for a data shape."""
    if len(data_shape) == 1:
        return 3
    res = data_shape[-1]
    if data_shape[-2] != res or res < 8 or res & (res - 1):
        raise ValueError(f"conv blocks need square power-of-two images of at least 8 px, got {tuple(data_shape)}")
    return int(math.log2(res)) - 2


class Trunk(nn.Module):
    """x -> flat features. With `z_dim`, z is added as a learned linear bias to every layer
    after the first, before BN and the non-linearity (BiGAN's way of feeding z to D).
    `dropout` applies to the input of every layer (ALI's placement)."""

    def __init__(self, data_shape, width, *, z_dim=None, dropout=0.0, norm=True, bias=True, slope=0.2, kernel=4):
        super().__init__()
        self.points = len(data_shape) == 1
        n = n_stages(data_shape)
        chans = [width * 2**i for i in range(n)] if not self.points else [width] * n
        in_ch = data_shape[0]
        self.layers, self.norms, self.zmaps = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for i, ch in enumerate(chans):
            if self.points:
                self.layers.append(nn.Linear(in_ch, ch, bias=bias))
            else:
                self.layers.append(nn.Conv2d(in_ch, ch, kernel, 2, (kernel - 1) // 2, bias=bias))
            use_norm = norm and i > 0
            bn = (nn.BatchNorm1d if self.points else nn.BatchNorm2d)(ch)
            self.norms.append(bn if use_norm else nn.Identity())
            self.zmaps.append(nn.Linear(z_dim, ch, bias=False) if z_dim and i > 0 else None)
            in_ch = ch
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.act = nn.LeakyReLU(slope)
        self.feature_channels = chans[-1]
        self.out_dim = chans[-1] if self.points else chans[-1] * 16

    def feature_map(self, x, z=None, masks=None):
        """Last hidden activation: (B, C, 4, 4) for images, (B, C) for points. `masks`: dropout
        masks drawn beforehand, one per layer (see models/ali.py), instead of dropout's own draws."""
        h = x
        for i, (layer, bn, zmap) in enumerate(zip(self.layers, self.norms, self.zmaps)):
            h = layer(self.drop(h) if masks is None else h * masks[i])
            if zmap is not None:
                zb = zmap(z)
                h = h + (zb if self.points else zb[:, :, None, None])
            h = self.act(bn(h))
        return h

    def forward(self, x, z=None, masks=None):
        return self.feature_map(x, z, masks).flatten(1)


class Encoder(nn.Module):
    """E: x -> raw head output (B, out_dim). The model applies its own output map
    (2*sigmoid-1 for BiGAN, linear for BiGAN-QP, (mu, log sigma) split for ALI)."""

    def __init__(self, data_shape, out_dim, width, *, head_bias=True):
        super().__init__()
        self.trunk = Trunk(data_shape, width)
        self.head = nn.Linear(self.trunk.out_dim, out_dim, bias=head_bias)

    def forward(self, x):
        return self.head(self.trunk(x))

    def pooled_features(self, x):
        """Spatially averaged last feature map, for a probe on intermediate features."""
        h = self.trunk.feature_map(x)
        return h if h.dim() == 2 else h.mean((2, 3))


class Generator(nn.Module):
    """G: z -> x in [-1, 1]. Linear to a 4x4 map, then stride-2 transposed convs (DCGAN)."""

    def __init__(self, data_shape, z_dim, width):
        super().__init__()
        n = n_stages(data_shape)
        self.data_shape = tuple(data_shape)
        if len(data_shape) == 1:
            layers, d = [], z_dim
            for _ in range(n):
                layers += [nn.Linear(d, width), nn.BatchNorm1d(width), nn.ReLU()]
                d = width
            layers.append(nn.Linear(d, data_shape[0]))  # points are unbounded: no tanh
            self.net = nn.Sequential(*layers)
            return
        top = width * 2 ** (n - 1)
        layers = [nn.Linear(z_dim, top * 16), nn.Unflatten(1, (top, 4, 4)), nn.BatchNorm2d(top), nn.ReLU()]
        ch = top
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU()]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, data_shape[0], 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)


class JointDiscriminator(nn.Module):
    """D(x, z) -> logit (B,): the shared x-trunk with z added at every layer after the first."""

    def __init__(self, data_shape, z_dim, width, *, head_bias=True, **trunk_options):
        super().__init__()
        self.trunk = Trunk(data_shape, width, z_dim=z_dim, **trunk_options)
        self.head = nn.Linear(self.trunk.out_dim, 1, bias=head_bias)

    def forward(self, x, z):
        return self.head(self.trunk(x, z)).squeeze(1)


def init_normal(module, std, zmap_std=None):
    """N(0, std) weights and zero biases for conv/linear layers, unit-gain BN.

    `zmap_std(layer)` gives the init std of a Trunk's z projections (BiGAN scales it by k^2)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for m in module.modules():  # second pass, so the generic init above does not overwrite it
        if hasattr(m, "zmaps") and zmap_std is not None:  # Trunk, or a model net with the same z maps
            for layer, zmap in zip(m.layers, m.zmaps):
                if zmap is not None:
                    nn.init.normal_(zmap.weight, 0.0, zmap_std(layer))


def count_params(module):
    return sum(p.numel() for p in module.parameters())
