"""What one training step computes: D's weight gradients once per D pass that D's update
differentiates (no backward computes one it drops), and the restructured updates unchanged.
tests/benchmarks/core/test_compiled.py counts the same on the compiled fast path."""
import pytest
import torch
import torch.nn.functional as F

import models
from benchmarks.config import load_config
from benchmarks.core.runtime import Runtime
from benchmarks.training.build import build_model
from tests.helpers import DWeightGrads, batch, expected_d_weight_grads, hand_simultaneous_step

STEPS = 2
KW = dict(data_shape=(1, 16, 16), z_dim=8, width=8, total_steps=100)


def _with_d():
    return [n for n in models.available() if "D" in models.get(n).networks]


def _count(name, fast):
    cfg = load_config("digits", budget="smoke", overrides=["train.batch_size=8"])
    runtime = Runtime("cpu", fast=fast, compile=False)
    runtime.seed_everything(0)
    model = build_model(cfg, name, (1, 16, 16))
    runtime.prepare(model)
    model.train()
    x = batch({"data_shape": (1, 16, 16)}, 8 * model.batches_per_step)
    with DWeightGrads(model.D) as counter, runtime.autocast():
        for step in range(STEPS):
            model.train_step(runtime.batch(x), step)
    runtime.release(model)
    return counter.count, expected_d_weight_grads(name, model, STEPS)


@pytest.mark.slow
@pytest.mark.parametrize("name", _with_d())
def test_one_d_backward_per_d_update_on_the_eager_paths(name):
    plain, expected = _count(name, fast=False)
    fast, _ = _count(name, fast=True)
    assert plain > 0 and plain == fast
    if expected is not None:
        assert plain == expected, (name, plain, expected)


@pytest.mark.parametrize("compiled_d", [False, True])
@pytest.mark.parametrize("name", ["bigan", "ali"])
def test_two_pass_update_is_the_one_pass_update(name, compiled_d):
    """Where D is compiled, BiGAN and ALI read D's loss and G's and E's loss from two D passes
    over one batch (with one set of dropout masks); eagerly, from one. Either step equals the
    released one-pass simultaneous update, parameters and running averages alike (D's batch norm
    records the batch once)."""
    torch.manual_seed(0)
    m = models.build(name, **KW)
    if compiled_d:  # the form a compiled D gets, here on eager networks so that it can be compared
        m.compiled_networks = frozenset({"D"})
    ref = models.build(name, **KW)
    ref.load_state_dict(m.state_dict())
    x = batch(KW, 16)
    torch.manual_seed(5)
    m.train_step(x, 0)

    torch.manual_seed(5)  # the train_step's draws, in its order
    z = ref.sample_latent(16)
    if name == "bigan":
        real, fake = ref.D(x, ref.encode(x)), ref.D(ref.G(z), z)
        bce = F.binary_cross_entropy_with_logits
        loss_d = 0.5 * bce(real, torch.ones_like(real)) + 0.5 * bce(fake, torch.zeros_like(fake))
        loss_ge = 0.5 * bce(real, torch.zeros_like(real)) + 0.5 * bce(fake, torch.ones_like(fake))
    else:
        z_hat, _ = ref.sample_posterior(x)
        logits = ref.D(torch.cat([x, ref.G(z)]), torch.cat([z_hat, z]))  # D's own dropout draws
        loss_d = F.softplus(-logits[:16]).mean() + F.softplus(logits[16:]).mean()
        loss_ge = F.softplus(logits[:16]).mean() + F.softplus(-logits[16:]).mean()
    hand_simultaneous_step(ref, loss_d, loss_ge)
    mine, theirs = m.state_dict(), ref.state_dict()
    for k, v in theirs.items():
        assert torch.allclose(mine[k].float(), v.float(), atol=1e-6), k
    assert [k for k in theirs if "running" in k]  # the buffers compared include D's running averages


def test_frozen_trains_nothing_and_restores():
    m = models.build("bigan", **KW)
    m.D.trunk.layers[0].weight.requires_grad_(False)  # a flag set before is kept
    before = {k: v.clone() for k, v in m.D.state_dict().items()}
    with models.base.frozen(m.D, running_stats=False):
        m.D(batch(KW, 8), m.sample_latent(8))
        assert not any(p.requires_grad for p in m.D.parameters())
    assert all(torch.equal(before[k], v) for k, v in m.D.state_dict().items())  # no running average moved
    assert [p.requires_grad for p in m.D.parameters()].count(False) == 1
    m.D(batch(KW, 8), m.sample_latent(8))  # outside: batch norm records again
    assert not torch.equal(before["trunk.norms.1.running_mean"], m.D.state_dict()["trunk.norms.1.running_mean"])
