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
