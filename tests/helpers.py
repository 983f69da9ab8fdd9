"""Small helpers shared by the model tests."""
import torch


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
