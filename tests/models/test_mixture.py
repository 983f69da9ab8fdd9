"""`arch: paper` on 2-D points: ALI's released mixture networks for ALI and its GAN baseline,
and the per-run random draw of Adam's lr, beta1 and the init std."""
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import models
from models.mixture_blocks import COVEncoder, LinearMaxout, MaxoutDiscriminator, MixtureGenerator

PKW = dict(data_shape=(2,), z_dim=2, width=16, total_steps=100, arch="paper")


def _linears(net):
    return [m for m in net.modules() if isinstance(m, nn.Linear)]


def test_ali_builds_the_mixture_script_nets():
    m = models.build("ali", **PKW, init_std=0.02)
    assert isinstance(m.G, MixtureGenerator) and isinstance(m.E, COVEncoder) and isinstance(m.D, MaxoutDiscriminator)
    # G 2 -> 400 x 4 -> 2, hidden layers bias-free with BN, output with a bias
    assert [(l.in_features, l.out_features, l.bias is not None) for l in _linears(m.G)] == [
        (2, 400, False), (400, 400, False), (400, 400, False), (400, 400, False), (400, 2, True)]
    assert sum(isinstance(b, nn.BatchNorm1d) and b.eps == 1e-4 and b.momentum == 0.05 for b in m.G.modules()) == 4
    # E reads [x, eps]: 4 -> 400 -> 400 -> 2
    assert [(l.in_features, l.out_features) for l in _linears(m.E)] == [(4, 400), (400, 400), (400, 2)]
    # D: 3 maxout layers of 200 units x 5 pieces on [x, z], then one logit; no BN, no dropout
    maxouts = [b for b in m.D.modules() if isinstance(b, LinearMaxout)]
    assert [(b.linear.in_features, b.linear.out_features) for b in maxouts] == [(4, 1000), (200, 1000), (200, 1000)]
    assert not any(isinstance(b, (nn.BatchNorm1d, nn.Dropout)) for b in m.D.modules())
    w = torch.cat([l.weight.flatten() for l in _linears(m)])
    assert w.std().item() == pytest.approx(0.02, rel=0.05)
    assert all(not l.bias.any() for l in _linears(m) if l.bias is not None)


def test_maxout_takes_the_max_over_each_units_pieces():
    mo = LinearMaxout(3, 2, 4)
    x = torch.randn(5, 3)
    assert torch.equal(mo(x), mo.linear(x).view(5, 2, 4).amax(-1))


def test_mixture_models_train_and_encode_deterministically():
    torch.manual_seed(0)
    x = torch.randn(100, 2)
    for name in ("ali", "gan-posthoc-encoder"):
        m = models.build(name, **PKW)
        before = {k: v.clone() for k, v in m.state_dict().items()}
        out = m.train_step(x, 0)
        assert {"loss_d", "d_real", "d_fake"} <= set(out) and all(torch.isfinite(v) for v in out.values())
        assert any(not torch.equal(before[k], v) for k, v in m.state_dict().items() if "D." in k)
        assert any(not torch.equal(before[k], v) for k, v in m.state_dict().items() if "G." in k)
        m.eval()
        assert torch.equal(m.encode(x), m.encode(x))  # eps = 0: a function of x
        assert m.decode(m.sample_latent(7)).shape == (7, 2)
    gan = models.build("gan-posthoc-encoder", **PKW)
    assert isinstance(gan.D, MaxoutDiscriminator) and _linears(gan.D)[0].in_features == 2  # a GAN's D sees x only
    assert gan.train_step(x, 99).keys() == {"loss_e"}  # the post-hoc phase fits the COV encoder


def test_random_hyperparameters_are_drawn_from_the_seed_and_used():
    torch.manual_seed(3)
    a = models.build("ali", **PKW, random_hparams=True)
    torch.manual_seed(3)
    b = models.build("ali", **PKW, random_hparams=True)
    torch.manual_seed(4)
    c = models.build("ali", **PKW, random_hparams=True)
    assert a.drawn == b.drawn != c.drawn
    assert 1e-4 / 3 <= a.drawn["lr"] <= 3e-4 and 0.5 <= a.drawn["adam_beta1"] <= 0.9
    assert 0.01 <= a.drawn["init_std"] <= 0.04
    group = a.optimizers["d"].param_groups[0]
    assert group["lr"] == a.drawn["lr"] and group["betas"][0] == a.drawn["adam_beta1"]
    assert models.build("ali", **PKW).drawn == {}


@pytest.mark.slow
def test_toy2d_ali_smoke_records_both_mode_rules_and_the_draw(cli):
    code, _, err = cli("run", "toy2d-ali", "--budget", "smoke", "--out", "r", "--no-figures")
    assert code == 0, err
    for name in ("ali", "gan-posthoc-encoder"):
        m = json.loads(Path(f"r/{name}/seed0/metrics.json").read_text())
        assert m["status"] == "ok" and 0 <= m["modes_3sigma"] <= m["modes_nearest"] <= 25
        assert set(m["drawn"]) == {"lr", "adam_beta1", "init_std"}
    cfg = json.loads(Path("r/ali/seed0/config.json").read_text())["config"]
    assert cfg["model_args"]["arch"] == "paper" and cfg["model_args"]["random_hparams"] is True
