import copy
import math

import pytest
import torch
import torch.nn.functional as F

import models
import models.ali  # noqa: F401  (registers "ali")
from models.errors import ModelConfigError
from tests.helpers import ROOT, hand_simultaneous_step
from tests.helpers import batch as _batch
from tests.helpers import snapshot as _snapshot

KW = dict(data_shape=(1, 16, 16), z_dim=8, width=8, total_steps=100)
PKW = dict(data_shape=(2,), z_dim=2, width=16, total_steps=100)
B = 16


@pytest.mark.parametrize("kw", [KW, PKW], ids=["img", "points"])
def test_trains_and_every_parameter_moves(kw):
    torch.manual_seed(0)
    m = models.build("ali", **kw)
    assert m.prior == "normal" and m.batches_per_step == 1 and m.d_steps_per_step == 1
    before = _snapshot(m)
    for step in range(3):
        out = m.train_step(_batch(kw, B, step), step)
        assert all(math.isfinite(v) for v in out.values()), out
    for prefix in ("G.", "E.", "D.x_path.", "D.z_path.", "D.joint."):
        assert any(n.startswith(prefix) for n in before), prefix
    unchanged = [n for n, p in m.named_parameters() if torch.equal(p, before[n])]
    assert not unchanged, unchanged
    assert all(p.grad is None for p in m.parameters())


def test_checkpoint_round_trip_continues_identically():
    torch.manual_seed(0)
    a = models.build("ali", **KW)
    for step in range(3):
        a.train_step(_batch(KW, B, step), step)
    torch.manual_seed(123)
    b = models.build("ali", **KW)
    # deep copies, as through a checkpoint file: Optimizer.load_state_dict keeps the given
    # state tensors (no copy) when dtype and device already match
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    b.load_optimizer_state(copy.deepcopy(a.optimizer_state()))
    for m in (a, b):
        torch.manual_seed(7)
        for step in range(3, 5):
            m.train_step(_batch(KW, B, step), step)
    for (n, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(p.float(), q.float(), atol=1e-6), n


def test_encode_is_the_mean_and_the_training_code_is_sampled():
    torch.manual_seed(0)
    m = models.build("ali", **KW)
    x = _batch(KW, B)
    m.eval()
    mu = m.encode(x)
    assert mu.shape == (B, 8) and torch.equal(mu, m.encode(x))
    assert torch.equal(mu, m.E(x)[:, :8])  # mu is the first half of E's 2 * z_dim outputs
    z1, sigma = m.sample_posterior(x)
    z2, _ = m.sample_posterior(x)
    assert not torch.allclose(z1, z2) and torch.all(sigma > 0)
    assert torch.allclose(sigma, torch.exp(m.E(x)[:, 8:]))  # log sigma, exponentiated, no clamp
    # the draws are centred on mu with spread sigma
    draws = m.sample_posterior(x.repeat(200, 1, 1, 1))[0].view(200, B, 8)  # eval mode: per-sample E
    assert torch.allclose(draws.mean(0), mu, atol=0.3) and torch.allclose(draws.std(0), sigma, rtol=0.25)


@pytest.mark.parametrize("compiled_d", [False, True])
def test_d_sees_one_concatenated_batch_real_first(compiled_d):
    torch.manual_seed(0)
    m = models.build("ali", **KW)
    if compiled_d:
        m.compiled_networks = frozenset({"D"})
    calls = []
    m.D.register_forward_hook(lambda mod, inp, out: calls.append((inp[0].detach().clone(), inp[1].shape)))
    x = _batch(KW, B)
    m.train_step(x, 0)
    # eagerly one pass serves both losses; a compiled D gets D's loss on detached pairs, then G's
    # and E's through a frozen D: the same batch twice
    assert len(calls) == (2 if compiled_d else 1)
    for xs, zshape in calls:
        assert xs.shape == (2 * B, 1, 16, 16) and zshape == (2 * B, 8)
        assert torch.equal(xs[:B], x)  # real first, fake second
    assert torch.equal(calls[0][0], calls[-1][0])


def test_losses_start_at_two_log2():
    torch.manual_seed(0)
    m = models.build("ali", **KW)
    out = m.train_step(_batch(KW, 64), 0)
    assert abs(out["loss_d"] - 2 * math.log(2)) < 0.05 and abs(out["loss_ge"] - 2 * math.log(2)) < 0.05


def test_one_step_matches_softplus_losses_and_simultaneous_update():
    """Recompute a step by hand: one D call on [real; fake], softplus losses, both gradients
    at the same parameters, then both Adam steps."""
    torch.manual_seed(0)
    m = models.build("ali", **KW)
    ref = models.build("ali", **KW)
    ref.load_state_dict(m.state_dict())
    x = _batch(KW, B)

    torch.manual_seed(5)
    m.train_step(x, 0)

    torch.manual_seed(5)  # same RNG order as train_step: prior, posterior noise, D's dropout
    z = ref.sample_latent(B)
    mu, log_sigma = ref.E(x).chunk(2, 1)
    z_hat = mu + torch.exp(log_sigma) * torch.randn_like(mu)
    logits = ref.D(torch.cat([x, ref.G(z)]), torch.cat([z_hat, z]))
    data, sample = logits[:B], logits[B:]
    loss_d = F.softplus(-data).mean() + F.softplus(sample).mean()
    loss_ge = F.softplus(data).mean() + F.softplus(-sample).mean()
    hand_simultaneous_step(ref, loss_d, loss_ge)
    for (n, a), b in zip(m.named_parameters(), ref.parameters()):
        assert torch.allclose(a, b, atol=1e-6), n


def test_paper_defaults_and_dropout_placement():
    m = models.build("ali", **KW)
    opt = m.optimizers["d"]
    assert opt.defaults["lr"] == 1e-4 and opt.defaults["betas"] == (0.5, 0.999) and opt.defaults["eps"] == 1e-8
    assert set(m.optimizers) == {"d", "ge"}
    ge = {id(p) for g in m.optimizers["ge"].param_groups for p in g["params"]}
    assert ge == {id(p) for p in list(m.G.parameters()) + list(m.E.parameters())}
    w = m.D.joint[1].weight
    assert abs(w.std().item() - 0.01) < 0.002  # N(0, 0.01) init
    # dropout 0.2 before each of the 2 z-path and 3 joint layers, and before each x-path conv
    drops = [mod for mod in m.D.modules() if isinstance(mod, torch.nn.Dropout)]
    assert all(d.p == 0.2 for d in drops) and len(drops) == 5 + 1  # Trunk shares one Dropout module
    assert all(layer.bias is None for layer in m.D.z_path if isinstance(layer, torch.nn.Linear))
    assert all(layer.bias is not None for layer in m.D.joint if isinstance(layer, torch.nn.Linear))
    # z-path = 2C, joint = 4C with C the trunk's last channel count (CelebA's 1024 / 2048 at C = 512)
    c = m.D.x_path.feature_channels
    assert m.D.z_path[1].out_features == 2 * c and m.D.joint[1].out_features == 4 * c


def test_paper_architecture_at_64px():
    torch.manual_seed(0)
    m = models.build("ali", data_shape=(3, 64, 64), z_dim=16, width=8, total_steps=10, arch="paper")
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert m.E.net(x).shape == (2, 32, 1, 1)  # 2 * z_dim at 1x1
        assert m.encode(x).shape == (2, 16)
        assert m.decode(m.sample_latent(2)).shape == (2, 3, 64, 64)
        assert m.D(x, m.sample_latent(2)).shape == (2,)
    assert m.G.out_bias.shape == (3, 64, 64)  # untied output bias
    assert m.D.x_path.out_dim == 512 and m.D.z_path[1].out_features == 1024 and m.D.joint[1].out_features == 2048
    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    assert bns and all(bn.eps == 1e-4 and bn.momentum == 0.05 for bn in bns)
    slopes = {mod.negative_slope for mod in m.modules() if isinstance(mod, torch.nn.LeakyReLU)}
    assert slopes == {0.02}


def test_paper_architecture_at_32px_trains_with_logodds_output_bias():
    torch.manual_seed(0)
    m = models.build("ali", data_shape=(1, 32, 32), z_dim=8, width=8, total_steps=10, arch="paper")
    assert m.E.net(torch.zeros(2, 1, 32, 32)).shape == (2, 16, 1, 1)
    x = torch.rand(4, 1, 32, 32) * 1.6 - 0.9
    out = m.train_step(x, 0)
    assert all(math.isfinite(v) for v in out.values())
    p = ((x + 1) / 2).mean(0)
    assert torch.allclose(m.G.out_bias, torch.log(p / (1 - p)), atol=1e-3)  # set once, then one Adam step
    assert not m.logodds_pending and "logodds_pending" in m.state_dict()
    before = m.G.out_bias.detach().clone()
    m.train_step(x * 0, 1)  # not re-initialised from later batches
    assert torch.allclose(m.G.out_bias, before, atol=1e-3)


def test_paper_architecture_unsupported_shapes():
    with pytest.raises(ModelConfigError, match="64x64"):
        models.build("ali", **{**KW, "arch": "paper"})
    with pytest.raises(ModelConfigError, match="images"):
        models.build("ali", **{**KW, "data_shape": (1, 28, 28), "arch": "paper"})


def _adam_settings(m):
    return {k: [{key: v for key, v in g.items() if key != "params"} for g in o.state_dict()["param_groups"]]
            for k, o in m.optimizers.items()}


def test_adams_epsilon_is_adam_eps_and_the_old_eps_still_builds_the_same_ali():
    """ALI's Adam epsilon was the option `eps`, the only model not spelling it adam_eps: a config
    that still says eps builds the same ALI, with a warning that names the new spelling."""
    assert "adam_eps" in models.options("ali") and "eps" not in models.options("ali")
    new = models.build("ali", **KW, adam_eps=1e-6)
    with pytest.warns(FutureWarning, match=r"model_options.ali.eps is now spelt adam_eps"):
        old = models.build("ali", **KW, eps=1e-6)
    assert _adam_settings(old) == _adam_settings(new)
    assert {g["eps"] for groups in _adam_settings(new).values() for g in groups} == {1e-6}
    with pytest.raises(ModelConfigError, match="sets both eps and adam_eps"):
        models.build("ali", **KW, eps=1e-6, adam_eps=1e-8)
    with pytest.raises(ModelConfigError, match=r"model_options.ali.adam_eps must be > 0, got 0"):
        models.registry.check_options(models.get("ali"), "ali", {"eps": 0})


def test_a_committed_ali_run_written_with_eps_builds_under_todays_names():
    """results/toy2d-ali's runs recorded Adam's settings as beta1, beta2 and eps; read through the
    registry (silently: a record is not the user's to fix) they build the ALI they trained."""
    import json
    import warnings

    record = ROOT / "results" / "toy2d-ali" / "ali" / "seed0" / "config.json"
    args = json.loads(record.read_text())["config"]["model_args"]
    assert {"beta1", "beta2", "eps"} <= set(args)  # the old names, as recorded
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        today = models.upgraded_options("ali", args, warn=False)
    assert {"adam_beta1", "adam_beta2", "adam_eps"} <= set(today) and not {"beta1", "beta2", "eps"} & set(today)
    m = models.build("ali", **{**today, "data_shape": tuple(today["data_shape"])})
    assert m.optimizers["d"].defaults["eps"] == args["eps"] and m.optimizers["d"].defaults["betas"][1] == args["beta2"]
