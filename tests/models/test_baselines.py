"""The two reference rows: gan-posthoc-encoder and autoencoder."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

import models
import models.autoencoder  # noqa: F401  (registers "autoencoder")
import models.gan_posthoc_encoder  # noqa: F401  (registers "gan-posthoc-encoder")
from models.errors import ModelConfigError
from tests.helpers import batch as _batch
from tests.helpers import snapshot


def _snapshot(module):
    return snapshot(module, buffers=True)  # parameters and BN buffers

KW = dict(data_shape=(1, 16, 16), z_dim=8, width=8, total_steps=10)
PKW = dict(data_shape=(2,), z_dim=2, width=16, total_steps=10)
B = 16


def _changed(module, before):
    return {n for n, t in module.state_dict().items() if not torch.equal(t, before[n])}


def _round_trip(name, kw, steps_before, steps_after):
    torch.manual_seed(0)
    a = models.build(name, **kw)
    for step in range(steps_before):
        a.train_step(_batch(kw, B, step), step)
    torch.manual_seed(123)
    b = models.build(name, **kw)
    # deep copies, as through a checkpoint file (Optimizer.load_state_dict does not copy)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    b.load_optimizer_state(copy.deepcopy(a.optimizer_state()))
    for m in (a, b):
        torch.manual_seed(7)
        for step in range(steps_before, steps_before + steps_after):
            m.train_step(_batch(kw, B, step), step)
    for (n, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(p.float(), q.float(), atol=1e-6), n


# --- gan-posthoc-encoder -----------------------------------------------------------------

@pytest.mark.parametrize("kw", [KW, PKW], ids=["img", "points"])
def test_posthoc_phases_train_the_right_networks(kw):
    torch.manual_seed(0)
    m = models.build("gan-posthoc-encoder", **kw)  # 10 steps, posthoc_fraction 0.2: GAN 0..7, encoder 8, 9
    assert m.prior == "normal" and m.batches_per_step == 1 and m.d_steps_per_step == 1
    assert m.gan_steps == 8 and m.phase(7) == "gan" and m.phase(8) == "posthoc"
    before = {k: _snapshot(getattr(m, k)) for k in "GED"}
    for step in range(3):
        out = m.train_step(_batch(kw, B, step), step)
        assert set(out) == {"loss_d", "loss_g", "d_real", "d_fake"}
        assert all(math.isfinite(v) for v in out.values()), out
    assert not _changed(m.E, before["E"])  # E untouched in the GAN phase
    for k in "GD":  # every parameter of G and D moves
        moved = _changed(getattr(m, k), before[k])
        assert {n for n, _ in getattr(m, k).named_parameters()} <= moved, k

    before = {k: _snapshot(getattr(m, k)) for k in "GED"}
    for step in (8, 9):
        out = m.train_step(_batch(kw, B, step), step)
        assert set(out) == {"loss_e"} and math.isfinite(out["loss_e"])
    assert not _changed(m.G, before["G"]) and not _changed(m.D, before["D"])  # weights and BN buffers fixed
    assert {n for n, _ in m.E.named_parameters()} <= _changed(m.E, before["E"])
    assert all(p.grad is None for p in m.parameters())
    assert m.G.training  # G is back in train mode after the eval-mode forward


def test_posthoc_gan_phase_matches_dcgan_alternating_update():
    torch.manual_seed(0)
    m = models.build("gan-posthoc-encoder", **KW)
    ref = models.build("gan-posthoc-encoder", **KW)
    ref.load_state_dict(m.state_dict())
    x = _batch(KW, B)
    torch.manual_seed(3)
    m.train_step(x, 0)
    torch.manual_seed(3)
    bce = F.binary_cross_entropy_with_logits
    fake = ref.G(ref.sample_latent(B))
    r, f = ref.D(x), ref.D(fake.detach())
    (bce(r, torch.ones_like(r)) + bce(f, torch.zeros_like(f))).backward()
    ref.optimizers["d"].step()
    ref.G.zero_grad()
    g = ref.D(fake)
    bce(g, torch.ones_like(g)).backward()  # against the updated D
    ref.optimizers["g"].step()
    for (n, a), b in zip(m.named_parameters(), ref.parameters()):
        assert torch.allclose(a, b, atol=1e-6), n


def test_posthoc_encoder_loss_goes_down_on_a_fixed_generator():
    torch.manual_seed(0)
    m = models.build("gan-posthoc-encoder", **{**KW, "total_steps": 40, "posthoc_fraction": 1 - 1 / 40, "lr": 2e-3})
    m.train_step(_batch(KW, B), 0)  # one GAN step, then only the encoder
    with torch.no_grad():  # settle G's BN running statistics (a trained G has them), so the
        for _ in range(60):  # eval-mode G is not a near-constant map at this untrained init
            m.G(torch.randn(256, 8))
    z_eval = torch.randn(256, 8, generator=torch.Generator().manual_seed(1))

    def eval_loss():  # the fitting loss on fixed z (G in eval mode inside, E in train mode as trained)
        with torch.no_grad():
            return m.encoder_loss(z_eval).item()

    start = eval_loss()
    g_before = _snapshot(m.G)
    losses = [m.train_step(_batch(KW, 64, s), s)["loss_e"] for s in range(1, 40)]
    assert not _changed(m.G, g_before)
    assert eval_loss() < 0.5 * start
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])


def test_posthoc_checkpoint_round_trip_across_the_phase_boundary():
    _round_trip("gan-posthoc-encoder", KW, steps_before=7, steps_after=2)  # steps 7 (GAN) and 8 (encoder)


def test_posthoc_options_and_defaults():
    m = models.build("gan-posthoc-encoder", **KW)
    for opt in m.optimizers.values():
        assert opt.defaults["lr"] == 2e-4 and opt.defaults["betas"] == (0.5, 0.999)
    assert m.param_counts()["d"] > 0 and all(zmap is None for zmap in m.D.trunk.zmaps)  # D sees x only
    assert models.build("gan-posthoc-encoder", **{**KW, "posthoc_fraction": 0.0}).gan_steps == 10
    assert models.build("gan-posthoc-encoder", **{**KW, "arch": "paper"}).gan_steps == 8  # shared nets
    with pytest.raises(ModelConfigError, match="posthoc_fraction"):
        models.build("gan-posthoc-encoder", **{**KW, "posthoc_fraction": 1.0})


# --- autoencoder -----------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [KW, PKW], ids=["img", "points"])
def test_autoencoder_trains_and_every_parameter_moves(kw):
    torch.manual_seed(0)
    m = models.build("autoencoder", **kw)
    assert m.prior == "normal" and m.batches_per_step == 1 and m.d_steps_per_step == 0
    counts = m.param_counts()
    assert counts["d"] == 0 and counts["g"] > 0 and counts["e"] > 0
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    assert any(n.startswith("G.") for n in before) and any(n.startswith("E.") for n in before)
    for step in range(2):
        out = m.train_step(_batch(kw, B, step), step)
        assert set(out) == {"loss_rec"} and math.isfinite(out["loss_rec"])
    unchanged = [n for n, p in m.named_parameters() if torch.equal(p, before[n])]
    assert not unchanged, unchanged
    assert all(p.grad is None for p in m.parameters())


def test_autoencoder_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    m = models.build("autoencoder", **KW)
    x = _batch(KW, B)
    losses = [m.train_step(x, step)["loss_rec"] for step in range(30)]
    assert losses[-1] < 0.92 * losses[0] and all(b < a for a, b in zip(losses, losses[1:]))
    assert abs(losses[0] - F.mse_loss(x, x * 0).item()) < 0.2  # starts near predicting 0 everywhere


def test_autoencoder_checkpoint_round_trip():
    _round_trip("autoencoder", KW, steps_before=3, steps_after=2)


def test_posthoc_d_updates_stop_at_the_gan_phase():
    import models as _models

    m = _models.build("gan-posthoc-encoder", data_shape=(1, 16, 16), z_dim=8, width=8, total_steps=10)
    assert [m.d_updates(s) for s in (0, 5, 8, 10)] == [0, 5, 8, 8]
