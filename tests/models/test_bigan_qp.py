import copy
import math

import pytest
import torch

import models
import models.bigan_qp  # noqa: F401  (registers the four variants)
from models.errors import ModelConfigError
from tests.helpers import batch as _batch
from tests.helpers import snapshot as _snapshot
from models.bigan_qp import qp_critic_loss, qp_distance

NAMES = ["bigan-qp-simple", "bigan-qp-simple-nosg", "bigan-qp-full", "bigan-qp-full-nosg"]
KW = dict(data_shape=(1, 16, 16), z_dim=8, width=8, total_steps=100)
PKW = dict(data_shape=(2,), z_dim=2, width=16, total_steps=100)
B = 16


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("kw", [KW, PKW], ids=["img", "points"])
def test_trains_and_every_parameter_moves(name, kw):
    torch.manual_seed(0)
    m = models.build(name, **kw)
    assert m.prior == "normal" and m.batches_per_step == 3 and m.d_steps_per_step == 2
    before = _snapshot(m)
    for step in range(2):
        out = m.train_step(_batch(kw, 3 * B, step), step)
        assert all(math.isfinite(v) for v in out.values()), out
    for prefix in ("G.", "E.", "D."):
        assert any(n.startswith(prefix) for n in before)
    unchanged = [n for n, p in m.named_parameters() if torch.equal(p, before[n])]
    assert not unchanged, unchanged
    assert all(p.grad is None for p in m.parameters())  # no stale grads left on T (or G, E)


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip_continues_identically(name):
    torch.manual_seed(0)
    a = models.build(name, **KW)
    for step in range(3):
        a.train_step(_batch(KW, 3 * B, step), step)
    torch.manual_seed(123)
    b = models.build(name, **KW)
    # deep copies: Optimizer.load_state_dict keeps references to same-device tensors, so
    # without a copy B's Adam moments would alias A's and move when A trains
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    b.load_optimizer_state(copy.deepcopy(a.optimizer_state()))
    for m in (a, b):
        torch.manual_seed(7)
        for step in range(3, 5):
            m.train_step(_batch(KW, 3 * B, step), step)
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6), n
    for (n, p), q in zip(a.named_buffers(), b.buffers()):
        assert torch.allclose(p.float(), q.float(), atol=1e-6), n


def _nonzero_grad(term, module):
    params = list(module.parameters())
    grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
    return any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", NAMES)
def test_stop_gradient_routing(name):
    torch.manual_seed(0)
    m = models.build(name, **KW)
    adv, z_cycle, x_cycle = m.ge_terms(_batch(KW, B), m.sample_latent(B))
    sg = not name.endswith("nosg")
    assert m.stop_gradient is sg
    # z-cycle ||z - E(G(z))||^2 always trains E; x-cycle ||x - G(E(x))||^2 always trains G
    assert _nonzero_grad(z_cycle, m.E) and _nonzero_grad(x_cycle, m.G)
    # the stop-gradients cut the other half
    assert _nonzero_grad(z_cycle, m.G) is (not sg)
    assert _nonzero_grad(x_cycle, m.E) is (not sg)
    assert not _nonzero_grad(z_cycle, m.D) and not _nonzero_grad(x_cycle, m.D)
    assert _nonzero_grad(adv, m.G) and _nonzero_grad(adv, m.E)


def test_qp_loss_on_fixed_tensors():
    delta = torch.tensor([1.0, -2.0, 0.5])
    dist = torch.tensor([0.5, 1.0, 2.0])
    lam = 10.0
    want = sum(-t + t * t / (2 * lam * d) for t, d in zip(delta.tolist(), dist.tolist())) / 3
    assert math.isclose(qp_critic_loss(delta, dist, lam).item(), want, rel_tol=1e-6)
    x_r, x_f = torch.zeros(2, 1, 2, 2), torch.tensor([1.0, -0.5]).view(2, 1, 1, 1).expand(2, 1, 2, 2)
    z_r, z_f = torch.tensor([[1.0, 1.0], [0.0, 0.0]]), torch.tensor([[0.0, 3.0], [0.0, 0.0]])
    assert torch.allclose(qp_distance(x_r, x_f, z_r, z_f), torch.tensor([1.0 + 1.5, 0.5]))
    with pytest.raises(AssertionError):
        qp_critic_loss(delta[:, None], dist, lam)  # the (B,1) vs (B,) broadcast bug of old gan-qp


@pytest.mark.parametrize("name", ["bigan-qp-simple", "bigan-qp-full"])
def test_critic_loss_matches_hand_computation(name):
    torch.manual_seed(0)
    m = models.build(name, **KW)
    x, z = _batch(KW, B), m.sample_latent(B)
    delta, dist = m.critic_terms(x, z)
    assert delta.shape == (B,) and dist.shape == (B,)
    loss, _ = m.critic_loss(x, z)
    # by hand (train mode, same batches so same BN statistics)
    ex, gz = m.E(x).detach(), m.G(z).detach()
    h_r = torch.cat([m.D.feature(x), ex], 1)
    h_f = torch.cat([m.D.feature(gz), z], 1)
    if m.full:
        dt = m.D.mlp(torch.cat([h_r, h_f], 1))[:, 0] - m.D.mlp(torch.cat([h_f, h_r], 1))[:, 0]
    else:
        dt = m.D.mlp(h_r)[:, 0] - m.D.mlp(h_f)[:, 0]
    d = (x - gz).abs().mean((1, 2, 3)) + (ex - z).abs().mean(1)
    want = torch.mean(-dt + 0.5 * dt**2 / (10 * d))
    assert torch.allclose(loss, want, atol=1e-6)
    # the critic step sends no gradient to E or G
    assert not _nonzero_grad(loss, m.E) and not _nonzero_grad(loss, m.G)


@pytest.mark.parametrize("name", NAMES)
def test_delta_is_antisymmetric(name):
    torch.manual_seed(0)
    m = models.build(name, **KW)
    m.train_step(_batch(KW, 3 * B), 0)  # non-trivial BN running statistics
    m.eval()
    x, z = _batch(KW, B, 1), m.sample_latent(B)
    with torch.no_grad():
        ex, gz = m.E(x), m.G(z)
        forward, backward = m.D(x, ex, gz, z), m.D(gz, z, x, ex)
    assert forward.shape == (B,)
    assert torch.allclose(forward, -backward, atol=1e-6)
    assert forward.abs().max() > 0


def test_full_critic_is_pairwise():
    """The full critic's ΔT for one real pair depends on which fake pair it meets."""
    torch.manual_seed(0)
    m = models.build("bigan-qp-full", **KW).eval()
    x, z = _batch(KW, 2), m.sample_latent(2)
    with torch.no_grad():
        ex, gz = m.E(x), m.G(z)
        d1 = m.D(x[:1], ex[:1], gz[:1], z[:1]) - m.D(x[:1], ex[:1], gz[1:], z[1:])
        t_f = m.D(gz[1:], z[1:], gz[:1], z[:1])  # unary T would give d1 == this
    assert m.D.mlp[0].in_features == 4 * KW["z_dim"]
    assert not torch.allclose(d1, t_f, atol=1e-5)


@pytest.mark.parametrize("name", ["bigan-qp-simple", "bigan-qp-full-nosg"])
def test_two_critic_updates_on_fresh_batches(name):
    torch.manual_seed(0)
    m = models.build(name, **KW)
    seen = {"d": [], "ge": []}
    critic_loss, ge_loss = m.critic_loss, m.ge_loss
    m.critic_loss = lambda x, z: (seen["d"].append((x, z)), critic_loss(x, z))[1]
    m.ge_loss = lambda x, z: (seen["ge"].append((x, z)), ge_loss(x, z))[1]
    batch = _batch(KW, 3 * B)
    m.train_step(batch, 0)
    assert [x.shape[0] for x, _ in seen["d"] + seen["ge"]] == [B, B, B]
    assert torch.equal(torch.cat([x for x, _ in seen["d"] + seen["ge"]]), batch)  # batch 1, 2: T; batch 3: G/E
    zs = [z for _, z in seen["d"] + seen["ge"]]
    assert not torch.equal(zs[0], zs[1]) and not torch.equal(zs[1], zs[2])  # fresh z each update
    t_steps = {int(s["step"]) for s in m.optimizers["d"].state.values()}
    ge_steps = {int(s["step"]) for s in m.optimizers["ge"].state.values()}
    assert t_steps == {2} and ge_steps == {1}
    with pytest.raises(ValueError, match="3 batches"):
        m.train_step(batch[:-1], 1)


def test_options_and_optimisers():
    m = models.build("bigan-qp-simple", **KW)
    options = models.options("bigan-qp-simple")
    assert options["z_cycle_weight"] == 2.0 and options["x_cycle_weight"] == 3.0
    assert models.options("bigan-qp-full")["lam"] == 10.0
    for opt in m.optimizers.values():
        g = opt.param_groups[0]
        assert g["lr"] == 2e-4 and g["betas"] == (0.5, 0.999) and g["eps"] == 1e-7 and g["weight_decay"] == 0
    assert not m.schedulers
    ids = lambda ms: {id(p) for mod in ms for p in mod.parameters()}  # noqa: E731
    assert {id(p) for g in m.optimizers["d"].param_groups for p in g["params"]} == ids([m.D])
    assert {id(p) for g in m.optimizers["ge"].param_groups for p in g["params"]} == ids([m.G, m.E])
    # critic_hidden default: the trunk's last channels (16 px: 2 stages)
    assert m.D.mlp[0].out_features == 2 * KW["width"]
    assert all(lin.bias is None for lin in m.D.modules() if isinstance(lin, (torch.nn.Linear, torch.nn.Conv2d)))
    assert m.E.head.bias is not None  # linear encoder output with bias, no squashing
    x = _batch(KW, 8)
    assert torch.equal(m.encode(x), m.E(x))
    z = m.sample_latent(4000)
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.05
    m = models.build("bigan-qp-full", **{**KW, "critic_hidden": 24})
    assert m.D.mlp[2].in_features == 24


def test_paper_architecture():
    torch.manual_seed(0)
    m = models.build("bigan-qp-full", data_shape=(1, 16, 16), z_dim=8, width=8, total_steps=10, arch="paper")
    out = m.train_step(_batch(dict(data_shape=(1, 16, 16)), 12), 0)
    assert all(math.isfinite(v) for v in out.values())
    convs = [c for c in m.E.modules() if isinstance(c, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128] and convs[0].kernel_size == (5, 5)
    assert m.D.mlp[0].out_features == 8 * 16  # max_num_channels = 8R (1024 at the released 128 px)
    bns = [b for b in m.modules() if isinstance(b, torch.nn.modules.batchnorm._BatchNorm)]
    assert all(b.momentum == 0.01 and b.eps == 1e-3 for b in bns)

    m = models.build("bigan-qp-simple", data_shape=(3, 64, 64), z_dim=16, width=8, total_steps=10, arch="paper")
    convs = [c for c in m.D.feature.modules() if isinstance(c, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512] and all(c.bias is None for c in convs)
    m.eval()
    with torch.no_grad():
        assert m.decode(m.sample_latent(2)).shape == (2, 3, 64, 64)
        assert m.encode(torch.zeros(2, 3, 64, 64)).shape == (2, 16)
    with pytest.raises(ModelConfigError, match="points"):
        models.build("bigan-qp-simple", **{**PKW, "arch": "paper"})
    with pytest.raises(ModelConfigError, match="16 px"):
        models.build("bigan-qp-simple", **{**KW, "data_shape": (1, 8, 8), "arch": "paper"})
