"""Metrics as plain functions on tensors, usable outside the harness."""
from .probe import linear_probe
from .reconstruction import reconstruction_mse

__all__ = ["linear_probe", "reconstruction_mse"]
