"""Reconstruction errors of the encoder/generator pair: x -> G(E(x)) and z -> E(G(z)), and the
agreement of predicted labels between an input and its reconstruction (semantic reconstruction)."""
import torch


def _check(a, b):
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")


def reconstruction_mse(x, x_rec):
    """Per-element mean squared error. Pass images with pixels in [0, 1] (the harness does),
    so the number reads the same whatever range a model trains in."""
    _check(x, x_rec)
    return torch.mean((x.double() - x_rec.double()) ** 2).item()


def latent_cycle_mse(z, z_rec):
    """Mean over samples and latent dimensions of (z - E(G(z)))^2. Latent scales differ between
    priors (U(-1, 1) vs N(0, I)), so compare models with the same prior, or read it beside
    the prior's variance (1/3 for U(-1, 1), 1 for N(0, I))."""
    z, z_rec = torch.as_tensor(z), torch.as_tensor(z_rec)
    _check(z, z_rec)
    return torch.mean((z.double() - z_rec.double()) ** 2).item()


def label_agreement(labels_a, labels_b):
    """Fraction of samples whose predicted class is the same in a and b, e.g. a classifier's
    prediction on x and on G(E(x)). For (N, K) 0/1 attribute predictions: the mean over the K
    attributes of the per-attribute agreement (= the fraction of equal entries)."""
    a, b = torch.as_tensor(labels_a), torch.as_tensor(labels_b)
    _check(a, b)
    if a.dim() not in (1, 2):
        raise ValueError(f"labels must be (N,) or (N, K), got {tuple(a.shape)}")
    return (a == b).double().mean(0).mean().item()
