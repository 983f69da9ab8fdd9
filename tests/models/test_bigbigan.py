import copy
import math

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

import models
from models.errors import ModelConfigError
from models.bigbigan import d_hinge_loss, eg_loss, ema_schedule, resolve_size
from models.biggan_blocks import z_chunks
from tests.helpers import ROOT


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny nets: one thread is faster


KW = dict(data_shape=(1, 16, 16), z_dim=8, width=8, total_steps=100, size="tiny")
B = 16


def build(seed=0, **kw):
    torch.manual_seed(seed)
    return models.build("bigbigan", **{**KW, **kw})


def batch(seed, n=3 * B):
    return torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def params(m):
    return {k: v.detach().clone() for k, v in m.named_parameters()}


def test_trains_and_moves_every_parameter_of_g_e_and_d():
    m = build()
    before = params(m)
    for step in range(2):
        out = m.train_step(batch(step), step)
        assert all(math.isfinite(v) for v in out.values()), out
    after = params(m)
    # The hinge gradient of a score head's bias is (fraction of active fake margins) minus
    # (fraction of active real margins): exactly 0 while every |s| < 1, as at the start.
    head_bias = {"D.head_x.bias", "D.head_z.bias", "D.head_xz.bias"}
    for net in ("G.", "E.", "D."):
        names = [k for k in before if k.startswith(net) and k not in head_bias]
        assert names
        unchanged = [k for k in names if torch.equal(before[k], after[k])]
        assert not unchanged, unchanged


def test_points_are_refused():
    with pytest.raises(ModelConfigError, match="image model"):
        models.build("bigbigan", data_shape=(2,), z_dim=2, width=8, total_steps=10)


def test_checkpoint_round_trip_continues_identically():
    a = build(0)
    for step in range(3):
        a.train_step(batch(step), step)
    b = build(123)
    b.load_state_dict(a.state_dict())
    b.load_optimizer_state(copy.deepcopy(a.optimizer_state()))
    rng = torch.get_rng_state()
    for m in (a, b):
        torch.set_rng_state(rng)
        for step in (3, 4):
            m.train_step(batch(step), step)
    for (n, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), n


def test_d_returns_three_scores_and_loss_formulas():
    m = build()
    x, z = batch(0, 5), torch.randn(5, 8)
    s = m.D(x, z)
    assert len(s) == 3 and all(t.shape == (5,) for t in s)
    # fixed numbers, computed by hand: hinge on all three scores (the paper's sum)
    real = (torch.tensor([0.5, 2.0]), torch.tensor([-1.0, 0.0]), torch.tensor([3.0, 0.2]))
    fake = (torch.tensor([-2.0, 0.5]), torch.tensor([1.5, -0.5]), torch.tensor([0.0, -1.0]))
    assert d_hinge_loss(real, fake).item() == pytest.approx((0.25 + 1.5 + 0.4) + (0.75 + 1.5 + 0.5))
    assert eg_loss(real, fake).item() == pytest.approx((1.25 - 0.5 + 1.6) - (-0.75 + 0.5 - 0.5))
    # s_x sees only x and s_z only z
    x.requires_grad_(True)
    z.requires_grad_(True)
    s_x, s_z, s_xz = m.D(x, z)
    assert torch.autograd.grad(s_x.sum(), z, allow_unused=True)[0] is None
    assert torch.autograd.grad(s_z.sum(), x, allow_unused=True)[0] is None


# The scores (s_x, s_z, s_xz) each `unary` setting puts in the losses.
KEPT = {"both": (1, 1, 1), "x": (1, 0, 1), "z": (0, 1, 1), "none": (0, 0, 1)}


@pytest.mark.parametrize("unary", list(KEPT))
def test_train_step_matches_a_hand_computed_step(unary):
    """Two D steps on fresh batches (hinge on the 3 scores, or those `unary` keeps), then one
    E/G step on a third batch (unhinged real-minus-fake scores), recomputed by hand."""
    m, ref = build(unary=unary), build()
    x = batch(0)
    torch.manual_seed(5)
    m.train_step(x, 0)

    torch.manual_seed(5)
    xs = x.chunk(3)
    for k in range(2):
        z = torch.randn(B, 8)
        with torch.no_grad():
            xg = ref.G(z)
            mu, sig = ref.E(xs[k])
            ze = mu + sig * torch.randn_like(mu)
        s = ref.D(torch.cat([xs[k], xg]), torch.cat([ze, z]))
        s = [t for t, keep in zip(s, KEPT[unary]) if keep]
        loss = sum(torch.clamp(1 - t[:B], min=0).mean() + torch.clamp(1 + t[B:], min=0).mean() for t in s)
        ref.optimizers["d"].zero_grad()
        loss.backward()
        ref.optimizers["d"].step()
    z = torch.randn(B, 8)
    mu, sig = ref.E(xs[2])
    ze = mu + sig * torch.randn_like(mu)
    s = ref.D(torch.cat([xs[2], ref.G(z)]), torch.cat([ze, z]))
    loss = sum(t[:B].mean() - t[B:].mean() for t, keep in zip(s, KEPT[unary]) if keep)
    ge = list(ref.G.parameters()) + list(ref.E.parameters())
    for p, g in zip(ge, torch.autograd.grad(loss, ge)):
        p.grad = g
    ref.optimizers["g"].step()
    ref.optimizers["e"].step()
    theirs = dict(ref.named_parameters())
    for n, a in m.named_parameters():
        if not n.startswith("G_ema"):
            assert torch.allclose(a, theirs[n], atol=1e-6), n


def test_unary_both_is_the_default_bit_for_bit():
    """The option's default is the model as it was: same losses and weights, step for step."""
    runs = []
    for kw in ({}, {"unary": "both"}):
        m = build(**kw)
        losses = [{k: float(v) for k, v in m.train_step(batch(step), step).items()} for step in range(2)]
        runs.append((losses, m.state_dict()))
    (la, sa), (lb, sb) = runs
    assert la == lb
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_unary_ablations_train_with_the_left_out_heads_unchanged():
    """Each setting trains with finite losses; a left-out head keeps its weights (its gradient is
    zero, not missing, for DDP) and its scores are still logged; the networks are the same size."""
    sizes = build().param_counts()
    real = (torch.tensor([0.5, 2.0]), torch.tensor([-1.0, 0.0]), torch.tensor([3.0, 0.2]))
    fake = (torch.tensor([-2.0, 0.5]), torch.tensor([1.5, -0.5]), torch.tensor([0.0, -1.0]))
    hinge = {"x": (0.25 + 0.4) + (0.75 + 0.5), "z": (1.5 + 0.4) + (1.5 + 0.5), "none": 0.4 + 0.5}
    for unary in ("x", "z", "none"):
        m = build(unary=unary)
        assert m.param_counts() == sizes
        assert m.d_loss(real, fake).item() == pytest.approx(hinge[unary])
        before = params(m)
        for step in range(2):
            out = m.train_step(batch(step), step)
            assert all(math.isfinite(v) for v in out.values()), (unary, out)
            assert {"sx_real", "sz_real", "sxz_real"} <= set(out)
        after = params(m)
        for head, keep in zip(("head_x", "head_z", "head_xz"), KEPT[unary]):
            key = f"D.{head}.parametrizations.weight.original"
            assert torch.equal(before[key], after[key]) != bool(keep), (unary, head)


def test_a_bad_unary_is_refused():
    with pytest.raises(ModelConfigError, match="unary must be one of both, x, z, none .* got 'xz'"):
        build(unary="xz")


@pytest.mark.slow
def test_left_out_unary_heads_train_under_two_process_data_parallel(tmp_path):
    """DistributedDataParallel (no find_unused_parameters) fails at the next forward when a
    backward reaches only part of D: with both unary heads left out, two processes still train,
    as one process does."""
    import csv
    import os
    import subprocess
    import sys

    from tests import ddp_worker

    unary = "model_options.bigbigan.unary=none"
    ddp_worker.run(tmp_path / "single", "bigbigan", 2, fast=False, overrides=[unary])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "tests.ddp_worker", str(tmp_path / "ddp"), "bigbigan", "2", "plain", unary],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    a, b = (list(csv.DictReader(open(tmp_path / d / "losses.csv"))) for d in ("single", "ddp"))
    assert [r["step"] for r in a] == [r["step"] for r in b] == ["0", "1"]
    for ra, rb in zip(a, b):
        for k in set(ra) - {"mu_std"}:  # a std over rows: the mean of the processes' stds is not the global one
            assert float(ra[k]) == pytest.approx(float(rb[k]), rel=1e-3, abs=1e-4), (ra["step"], k)


def test_optimisers_lr_betas_and_two_d_updates_per_step():
    m = build()
    o = m.optimizers
    assert set(o) == {"d", "g", "e"}
    assert o["e"].param_groups[0]["lr"] == pytest.approx(10 * o["g"].param_groups[0]["lr"])
    assert o["g"].param_groups[0]["lr"] == 5e-5 and o["d"].param_groups[0]["lr"] == 2e-4
    assert all(g["betas"] == (0.0, 0.999) for opt in o.values() for g in opt.param_groups)
    assert m.d_steps_per_step == 2 and m.batches_per_step == 3 and m.prior == "normal"
    m.train_step(batch(0), 0)
    steps = {k: {float(s["step"]) for s in opt.state.values()} for k, opt in o.items()}
    assert steps == {"d": {2.0}, "g": {1.0}, "e": {1.0}}
    in_opt = {id(p) for opt in o.values() for g in opt.param_groups for p in g["params"]}
    assert not any(id(p) in in_opt for p in m.G_ema.parameters())


def test_encode_is_the_mean_and_the_posterior_sample_varies():
    m = build()
    x = batch(0, B)
    m.eval()
    assert torch.equal(m.encode(x), m.encode(x)) and m.encode(x).shape == (B, 8)
    assert torch.equal(m.encode(x), m.E(x)[0])
    assert (m.E(x)[1] > 0).all()  # sigma = softplus(.)
    assert not torch.equal(m.sample_posterior(x), m.sample_posterior(x))


def test_ema_generator_is_used_by_decode_and_checkpointed():
    m = build(ema_start=0)
    for step in range(3):
        m.train_step(batch(step), step)
    assert any(not torch.equal(a, b) for a, b in zip(m.G.parameters(), m.G_ema.parameters()))
    z = torch.randn(6, 8)
    m.eval()
    with torch.no_grad():
        out = m.decode(z)
        assert torch.equal(out, m.G_ema(z)) and not torch.allclose(out, m.G(z))
        assert out.shape == (6, 1, 16, 16) and out.abs().max() <= 1
    assert any(k.startswith("G_ema.") for k in m.state_dict())
    fresh = build(9)
    fresh.load_state_dict(m.state_dict())
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh.decode(z), out)
    counts = m.param_counts()
    n_g = sum(p.numel() for p in m.G.parameters())
    assert counts["g"] == n_g and sum(p.numel() for p in m.parameters()) == 2 * n_g + counts["e"] + counts["d"]


@pytest.mark.parametrize("decay", [0.5, 0.0])
def test_multi_tensor_ema_equals_the_loop_over_parameters(decay):
    """update_ema's one _foreach_lerp_ against the loop it replaced (a copy per parameter before
    the start step, a lerp after), bit for bit, over steps before and after the start."""
    m = build(ema_start=2, ema_ref_steps=0, ema_decay=decay)
    ref = copy.deepcopy(m)
    z = torch.randn(B, 8)
    for step in range(4):
        with torch.no_grad():
            for net in (m.G, ref.G):  # a G that moves between the steps
                for i, p in enumerate(net.parameters()):
                    p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(step * 1000 + i)) * 0.01)
        m.update_ema(z, step)
        with torch.no_grad():
            for pe, p in zip(ref.G_ema.parameters(), ref.G.parameters()):
                pe.copy_(p) if step < 2 or decay == 0.0 else pe.lerp_(p, 1 - decay)
            ref.G_ema(z)
        for (n, a), b in zip(m.G_ema.state_dict().items(), ref.G_ema.state_dict().values()):
            assert torch.equal(a, b), (step, n)
    assert not torch.equal(m.G_ema.state_dict()["linear.bias"], m.G.state_dict()["linear.bias"]) or decay == 0.0


def test_ema_schedule_scales_with_the_budget():
    assert ema_schedule(30, 0.999, 1000, 15000) == (2, pytest.approx(0.5))
    assert ema_schedule(1500, 0.999, 1000, 15000) == (100, pytest.approx(0.99))
    assert ema_schedule(20000, 0.999, 1000, 15000) == (1000, 0.999)
    assert ema_schedule(30, 0.999, 1000, 0) == (1000, 0.999)


def test_spectral_norm_in_g_and_d_not_in_e():
    m = build()
    for net in (m.G, m.D):
        layers = [mod for mod in net.modules() if isinstance(mod, (nn.Conv2d, nn.Linear))]
        assert layers and all(parametrize.is_parametrized(mod, "weight") for mod in layers)
    assert not any(parametrize.is_parametrized(mod) for mod in m.E.modules())
    assert m.G.embed.shape == (1, 128 if m.size != "tiny" else 8)  # the one class embedding, no SN


def test_sizes_resolution_and_hierarchical_z():
    assert z_chunks(32, 3) == [11, 11, 10] and z_chunks(64, 4) == [16] * 4 and z_chunks(128, 5) == [26] * 3 + [25] * 2
    for res, name in {16: "s16", 32: "s32", 64: "s64"}.items():
        assert resolve_size("auto", (3, res, res))["name"] == name
    assert build(size="auto").size == "s16"
    with pytest.raises(ModelConfigError, match="s16"):
        build(size="s64")
    with pytest.raises(ModelConfigError, match="unknown size"):
        build(size="huge")
    with pytest.raises(ModelConfigError, match="z_dim"):
        build(z_dim=2)
    a, b = build(width=8), build(width=64, arch="paper")  # width and arch have no effect
    assert a.param_counts() == b.param_counts()
    for res in (32, 64):  # tiny at 32 and 64 px: attention at res/2 in G and D, shapes through
        m = build(data_shape=(3, res, res), z_dim=13)
        assert len(m.G.attn) == 1 and len(m.D.F.attn) == 1
        m.eval()
        with torch.no_grad():
            x = m.decode(m.sample_latent(2))
            assert x.shape == (2, 3, res, res) and m.encode(x).shape == (2, 13)
            assert all(s.shape == (2,) for s in m.D(x, m.encode(x)))
