"""bigan-wgan and bigan-wgan-nogp: the Wasserstein critic on (x, z), its gradient penalty, and
the variant without any Lipschitz constraint."""
import math

import pytest
import torch

import models
import models.bigan_wgan as wgan
from models import registry
from models.errors import ModelConfigError
from tests.helpers import batch, snapshot

KW = dict(data_shape=(1, 16, 16), z_dim=8, width=8, total_steps=10)  # digits-sized
NAMES = ["bigan-wgan", "bigan-wgan-nogp"]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: one thread is faster


@pytest.mark.parametrize("name", NAMES)
def test_trains_a_few_steps_on_digits_sized_data(name):
    torch.manual_seed(0)
    m = models.build(name, **KW)
    assert (m.batches_per_step, m.d_steps_per_step, m.prior) == (3, 2, "normal")
    before = snapshot(m)
    x = batch(KW, 3 * 16)  # 2 critic batches and 1 E/G batch of 16
    for step in range(3):
        out = m.train_step(x, step)
    assert all(math.isfinite(float(v)) for v in out.values())
    assert {"loss_d", "loss_ge", "w_estimate"} <= set(out) and ("gp" in out) == (name == "bigan-wgan")
    after = snapshot(m)
    for net in ("G.", "E.", "D."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(net)), (name, net)
    assert m.encode(x[:4]).shape == (4, 8) and m.decode(m.sample_latent(4)).shape == (4, 1, 16, 16)
    with pytest.raises(ValueError, match="needs 3 batches"):
        m.train_step(x[:16], 3)


def test_defaults_and_the_variant():
    opts = models.options("bigan-wgan")
    assert (opts["lr"], opts["adam_beta1"], opts["adam_beta2"], opts["gp_weight"]) == (1e-4, 0.5, 0.9, 10.0)
    assert models.options("bigan-wgan-nogp")["gp_weight"] == 0.0
    m = models.build("bigan-wgan", **KW)
    assert m.optimizers["d"].param_groups[0]["betas"] == (0.5, 0.9) and m.optimizers["d"].param_groups[0]["lr"] == 1e-4
    assert not any(isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) for mod in m.D.modules())  # no BN under a GP
    assert models.build("bigan-wgan", **KW, gp_weight=0).gp_weight == 0.0  # the base model takes 0 too
    with pytest.raises(ModelConfigError, match=r"bigan-wgan-nogp.gp_weight must be 0 .*run bigan-wgan"):
        models.build("bigan-wgan-nogp", **KW, gp_weight=10.0)
    with pytest.raises(ModelConfigError, match=r"gp_weight must be >= 0"):
        models.build("bigan-wgan", **KW, gp_weight=-1.0)


def _count_double_backward(monkeypatch):
    """Calls of torch.autograd.grad with create_graph=True (the penalty's), counted."""
    calls, grad = [], torch.autograd.grad

    def counting(*args, **kwargs):
        if kwargs.get("create_graph"):
            calls.append(1)
        return grad(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting)
    return calls


def test_without_a_penalty_no_penalty_is_computed(monkeypatch):
    calls = _count_double_backward(monkeypatch)
    torch.manual_seed(0)
    for name, options in (("bigan-wgan-nogp", {}), ("bigan-wgan", {"gp_weight": 0.0})):
        out = models.build(name, **KW, **options).train_step(batch(KW, 48), 0)
        assert "gp" not in out and calls == [], name
        # the critic's loss is then the negated Wasserstein estimate and nothing else
        assert float(out["loss_d"]) == pytest.approx(-float(out["w_estimate"]), abs=1e-6)
    models.build("bigan-wgan", **KW).train_step(batch(KW, 48), 0)
    assert len(calls) == 2  # with the penalty: one double backward per critic step


def test_the_penalty_is_the_hand_computation_on_a_tiny_critic():
    """D(x, z) = c/2 (‖x‖² + ‖z‖²): its input gradient at the interpolate is c·(x̂, ẑ), so the
    penalty is mean (c·‖(x̂, ẑ)‖ − 1)², and its derivative in c is mean 2(c·r − 1)·r."""
    c = torch.tensor(0.7, requires_grad=True)

    def critic(x, z):
        return c / 2 * (x.flatten(1).pow(2).sum(1) + z.pow(2).sum(1))

    g = torch.Generator().manual_seed(0)
    x_real, x_fake = torch.randn(5, 1, 2, 3, generator=g), torch.randn(5, 1, 2, 3, generator=g)
    z_real, z_fake = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    eps = torch.tensor([0.0, 0.25, 0.5, 0.9, 1.0])
    penalty = wgan.gradient_penalty(critic, x_real, z_real, x_fake, z_fake, eps)

    r = []
    for i in range(5):  # one pair at a time, written out
        e = float(eps[i])
        x_hat, z_hat = e * x_real[i] + (1 - e) * x_fake[i], e * z_real[i] + (1 - e) * z_fake[i]
        r.append(math.sqrt(float(x_hat.pow(2).sum() + z_hat.pow(2).sum())))
    expected = sum((0.7 * ri - 1) ** 2 for ri in r) / 5
    assert float(penalty.detach()) == pytest.approx(expected, rel=1e-5)
    (dc,) = torch.autograd.grad(penalty, c)  # the penalty's gradient reaches the critic's parameters
    assert float(dc) == pytest.approx(sum(2 * (0.7 * ri - 1) * ri for ri in r) / 5, rel=1e-5)


def test_one_critic_step_is_the_wgan_gp_update():
    """The critic step recomputed by hand: mean D(fake) − mean D(real) + 10·penalty, gradients
    at D only, one Adam step; E and G untouched."""
    torch.manual_seed(0)
    m, ref = models.build("bigan-wgan", **KW), models.build("bigan-wgan", **KW)
    ref.load_state_dict(m.state_dict())
    x = batch(KW, 16)
    ge_before = {k: v for k, v in snapshot(m).items() if not k.startswith("D.")}

    torch.manual_seed(5)
    loss_d, penalty, _ = m.critic_step(x)

    torch.manual_seed(5)
    with torch.no_grad():
        z_real = ref.E(x)
        z_fake = ref.sample_latent(16)
        x_fake = ref.G(z_fake)
    eps = torch.rand(16)
    eps_x = eps.view(-1, 1, 1, 1)
    x_hat = (eps_x * x + (1 - eps_x) * x_fake).requires_grad_()
    z_hat = (eps[:, None] * z_real + (1 - eps[:, None]) * z_fake).requires_grad_()
    gx, gz = torch.autograd.grad(ref.D(x_hat, z_hat).sum(), (x_hat, z_hat), create_graph=True)
    hand_penalty = ((gx.pow(2).sum((1, 2, 3)) + gz.pow(2).sum(1)).sqrt() - 1).pow(2).mean()
    hand_loss = ref.D(x_fake, z_fake).mean() - ref.D(x, z_real).mean() + 10.0 * hand_penalty
    assert float(penalty) == pytest.approx(float(hand_penalty.detach()), rel=1e-5)
    assert float(loss_d) == pytest.approx(float(hand_loss.detach()), rel=1e-5)
    d_params = list(ref.D.parameters())
    for p, grad in zip(d_params, torch.autograd.grad(hand_loss, d_params)):
        p.grad = grad
    ref.optimizers["d"].step()
    for (n, a), b in zip(m.D.named_parameters(), ref.D.parameters()):
        assert torch.allclose(a, b, atol=1e-6), n
    assert all(torch.equal(v, snapshot(m)[k]) for k, v in ge_before.items())


def test_two_critic_steps_on_fresh_batches_then_an_ge_step_that_leaves_the_critic_alone():
    """train_step = critic_step on the first batch, critic_step on the second, then E and G on
    the third: D ends where the two critic steps left it, while E and G have moved."""
    torch.manual_seed(0)
    m, ref = models.build("bigan-wgan", **KW), models.build("bigan-wgan", **KW)
    ref.load_state_dict(m.state_dict())
    x = batch(KW, 48)
    torch.manual_seed(5)
    out = m.train_step(x, 0)
    torch.manual_seed(5)
    steps = [ref.critic_step(x[:16]), ref.critic_step(x[16:32])]
    assert float(out["loss_d"]) == pytest.approx(sum(float(s[0]) for s in steps) / 2, rel=1e-6)
    assert float(out["gp"]) == pytest.approx(sum(float(s[1]) for s in steps) / 2, rel=1e-6)
    ours, theirs = snapshot(m), snapshot(ref)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours if k.startswith("D."))
    for net in ("G.", "E."):
        assert any(not torch.equal(ours[k], theirs[k]) for k in ours if k.startswith(net)), net
    assert all(p.grad is None for p in m.parameters())  # no gradient left behind for the next step


def test_search_spaces_are_the_optimiser_space_without_gp_weight():
    for name in NAMES:
        assert {k: d.text for k, d in models.search_space(name).items()} == \
            {"lr": "10^U[-5, -2]", "adam_beta1": "U[0, 1)"}, name
        cls = models.get(name)
        assert models.draw_setting(name, 0) == {}
        for k in range(1, 16):
            setting = models.draw_setting(name, k)
            assert set(setting) == {"lr", "adam_beta1"}
            assert 1e-5 <= setting["lr"] <= 1e-2 and 0 <= setting["adam_beta1"] < 1
            registry.check_options(cls, name, setting)
            m = models.build(name, **KW, **setting)
            assert m.optimizers["ge"].param_groups[0]["lr"] == setting["lr"]
    # separate models, separate draws
    assert models.draw_setting("bigan-wgan", 1) != models.draw_setting("bigan-wgan-nogp", 1)
