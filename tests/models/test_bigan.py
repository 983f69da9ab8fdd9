import math

import torch
import torch.nn.functional as F

import models
from models.base import simultaneous_step
from tests.helpers import hand_simultaneous_step

KW = dict(data_shape=(1, 16, 16), z_dim=8, width=8, total_steps=100)


def test_prior_and_encoder_range():
    m = models.build("bigan", **KW)
    z = m.sample_latent(1000)
    assert z.min() >= -1 and z.max() <= 1 and abs(z.mean()) < 0.05  # U(-1, 1)
    x = torch.rand(32, 1, 16, 16) * 2 - 1
    e = m.encode(x)
    assert e.shape == (32, 8) and e.abs().max() < 1  # 2*sigmoid - 1
    assert m.E.head.bias is None  # bias-free encoder output layer, as released


def test_losses_start_at_log2():
    torch.manual_seed(0)
    m = models.build("bigan", **KW)
    out = m.train_step(torch.rand(64, 1, 16, 16) * 2 - 1, 0)
    assert abs(out["loss_d"] - math.log(2)) < 0.1 and abs(out["loss_ge"] - math.log(2)) < 0.1


def test_label_swapped_losses_and_simultaneous_update():
    """Recompute one step by hand: D and G/E gradients at the same parameters, losses as released."""
    torch.manual_seed(0)
    m = models.build("bigan", **KW)
    ref = models.build("bigan", **KW)
    ref.load_state_dict(m.state_dict())
    x = torch.rand(16, 1, 16, 16) * 2 - 1

    torch.manual_seed(5)
    m.train_step(x, 0)

    torch.manual_seed(5)
    z = ref.sample_latent(16)
    real, fake = ref.D(x, ref.encode(x)), ref.D(ref.G(z), z)
    bce = F.binary_cross_entropy_with_logits
    loss_d = 0.5 * bce(real, torch.ones_like(real)) + 0.5 * bce(fake, torch.zeros_like(fake))
    loss_ge = 0.5 * bce(real, torch.zeros_like(real)) + 0.5 * bce(fake, torch.ones_like(fake))
    hand_simultaneous_step(ref, loss_d, loss_ge)
    for (n, a), b in zip(m.named_parameters(), ref.parameters()):
        assert torch.allclose(a, b, atol=1e-6), n


def test_simultaneous_step_uses_pre_update_parameters():
    w = torch.nn.Parameter(torch.tensor(1.0))
    v = torch.nn.Parameter(torch.tensor(2.0))
    ow, ov = torch.optim.SGD([w], lr=0.1), torch.optim.SGD([v], lr=0.1)
    loss = w * v
    simultaneous_step((loss, ow), (-loss, ov))
    assert torch.isclose(w, torch.tensor(1.0 - 0.1 * 2.0)) and torch.isclose(v, torch.tensor(2.0 + 0.1 * 1.0))


def test_lr_decays_in_second_half():
    m = models.build("bigan", **{**KW, "total_steps": 10})
    x = torch.rand(8, 1, 16, 16) * 2 - 1
    lrs = []
    for step in range(10):
        lrs.append(m.optimizers["d"].param_groups[0]["lr"])
        m.train_step(x, step)
    assert lrs[:6] == [2e-4] * 6 and lrs[6] < 2e-4 and lrs[-1] >= 2e-6 * 0.99
    assert m.optimizers["d"].param_groups[1]["weight_decay"] == 0.0  # no decay on BN gains and biases


def test_paper_architecture_at_64px():
    import pytest

    from models.errors import ModelConfigError

    m = models.build("bigan", data_shape=(3, 64, 64), z_dim=16, width=8, total_steps=10, arch="paper")
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    out = m.train_step(x, 0)
    assert all(math.isfinite(v) for v in out.values())
    assert m.decode(m.sample_latent(2)).shape == (2, 3, 64, 64) and m.encode(x).shape == (4, 16)
    assert m.G.zmaps[0].weight.std() > 0.3  # z maps initialised at 0.02 * 5^2, as released
    with pytest.raises(ModelConfigError, match="64x64"):
        models.build("bigan", **{**KW, "arch": "paper"})
