"""Reconstruction error of G(E(x))."""
import torch


def reconstruction_mse(x, x_rec):
    """Per-element mean squared error. Pass images with pixels in [0, 1] (the harness does),
    so the number reads the same whatever range a model trains in."""
    if x.shape != x_rec.shape:
        raise ValueError(f"shapes differ: {tuple(x.shape)} vs {tuple(x_rec.shape)}")
    return torch.mean((x.double() - x_rec.double()) ** 2).item()
