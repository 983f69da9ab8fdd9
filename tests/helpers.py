"""Small helpers shared by the model tests."""
from pathlib import Path

import torch
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = Path(__file__).resolve().parent.parent  # the repository: tests/ sits at its top


def batch(kw, n, seed=0):
    """Random real data for a model built with `kw`: points ~ N(0, 1), images in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    if len(kw["data_shape"]) == 1:
        return torch.randn(n, *kw["data_shape"], generator=g)
    return torch.rand(n, *kw["data_shape"], generator=g) * 2 - 1


def snapshot(module, buffers=False):
    """Copies of the parameters (and, with `buffers`, BN statistics), keyed by name."""
    items = module.state_dict().items() if buffers else module.named_parameters()
    return {n: t.detach().clone() for n, t in items}


def hand_simultaneous_step(ref, loss_d, loss_ge):
    """The reference update written out: D's and (G, E)'s gradients at the same parameters,
    then both Adam steps (the models' "d" and "ge" optimisers)."""
    d_params = list(ref.D.parameters())
    ge_params = list(ref.G.parameters()) + list(ref.E.parameters())
    gd = torch.autograd.grad(loss_d, d_params, retain_graph=True)
    gge = torch.autograd.grad(loss_ge, ge_params)
    for p, g in zip(d_params + ge_params, gd + gge):
        p.grad = g
    ref.optimizers["d"].step()
    ref.optimizers["ge"].step()


# D passes (calls of D's convolution stack) per D update of each built-in model whose update is a
# plain backward: BiGAN scores real and fake pairs in two calls, BiGAN-QP's critic embeds both
# pairs with one trunk, the post-hoc row's GAN scores x and G(z) apart; ALI and BigBiGAN
# concatenate. bigan-wgan's penalty differentiates D twice, so it is compared between paths only.
D_PASSES_PER_UPDATE = {"bigan": 2, "ali": 1, "bigan-qp-simple": 2, "bigan-qp-simple-nosg": 2, "bigan-qp-full": 2,
                       "bigan-qp-full-nosg": 2, "bigbigan": 1, "gan-posthoc-encoder": 2, "bigan-wgan-nogp": 2}


class DWeightGrads(TorchDispatchMode):
    """Counts the weight gradients computed for the convolutions of `net` (D): one per D pass that
    D's update differentiates, on every path if no backward computes one it drops. Sees compiled
    code too (`ignore_compile_internals`: dynamo compiles as usual and the compiled graphs' aten
    ops reach the mode; with aot_eager, every op). A convolution's weight is D's when it is one of
    D's parameters or computed from D's parameters and buffers alone (a spectral-normalised or
    bf16 copy); those are kept alive here, so no other tensor takes their memory meanwhile."""

    def __init__(self, net):
        super().__init__()
        self.count, self._derived = 0, {}
        self._own = [*net.parameters(), *net.buffers()]  # the objects: a path may move their data (channels_last)

    @classmethod
    def ignore_compile_internals(cls):
        return True

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        own = {t.untyped_storage().data_ptr() for t in self._own} | self._derived.keys()

        def ours(t):
            return isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() in own

        if func is torch.ops.aten.convolution_backward.default:
            self.count += bool(args[-1][1] and ours(args[2]))
        else:
            tensors = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
            if tensors and all(ours(t) for t in tensors):
                for t in pytree.tree_leaves(out):
                    if isinstance(t, torch.Tensor):
                        self._derived[t.untyped_storage().data_ptr()] = t
        return out


def expected_d_weight_grads(name, model, steps):
    """D weight gradients the first `steps` steps must compute, or None for a model without a
    plain D update in D_PASSES_PER_UPDATE."""
    if name not in D_PASSES_PER_UPDATE:
        return None
    convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.D.modules())
    return model.d_updates(steps) * D_PASSES_PER_UPDATE[name] * convs
